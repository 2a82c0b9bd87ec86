"""python-escpos (PyPI) prints Cyrillic with the RP326 profile of the
capability database, as a POS application would; the bytes it would send go
to stdout for the Rust test to feed into the ESC/POS simulator."""
import sys

from escpos.printer import Dummy

p = Dummy(profile="RP326")
p.text("ПРИВЕТ, МИР\n")
p.text("Ёлка и щётка\n")
p.cut()
sys.stdout.buffer.write(p.output)
