# -*- coding: utf-8 -*-
"""The same whole shift through shtrihm-fr (PyPI, Python 2.7 only: its
utils module refuses Python 3): status, full status, text, open shift, two
sales, close paid in cash with change, X report, Z report. Its FCh method
has a bug of its own (NameError `sord`), so the device type is not asked.

Usage: python2.7 shtrihmfr_shift.py PTY_PATH
"""
from __future__ import print_function, unicode_literals

import sys
from decimal import Decimal

from shtrihmfr.kkt import KKT

kkt = KKT(port=sys.argv[1], password=30, admin_password=30, bod=9600)
st = kkt.x10()
print("mode:", st["kkt_mode"])
full = kkt.x11()
print("serial:", full["serial_number"], "last shift:", full["last_closed_session"])
assert full["serial_number"] == 12345678, full
assert full["inn"] == 7712345678, full
kkt.x17("ТЕСТ SHTRIHM-FR")
kkt.xE0()
kkt.x80(1, Decimal("89.90"), text="Молоко 3,2%", department=1, taxes=[1, 0, 0, 0])
kkt.x80(Decimal("2"), Decimal("45.50"), text="Хлеб", department=1, taxes=[2, 0, 0, 0])
closed = kkt.x85(cash=Decimal("200.00"), text="СПАСИБО")
print("change:", closed["odd"])
assert abs(closed["odd"] - 19.10) < 0.001, closed
kkt.x40()
kkt.x41()
assert kkt.x11()["last_closed_session"] == 1
print("shtrihm-fr shift ok")
