"""The receipt of `cargo bench -p posbridge-drivers --bench escpos`, built by
python-escpos with its Dummy printer, as the baseline for our encoder.

Same content: a 64x64 diagonal-pattern logo, a bold double-width title in
Cyrillic, 40 rows of three columns (name, qty x price, sum) fitted to a
32-character line, a QR code, a partial cut. python-escpos has no column
layout, so rows are padded here as the encoder would lay them out; it picks
Cyrillic code pages by itself (its "magic" encoder).

Run it through compare-python-escpos.sh, which installs python-escpos from
PyPI into a virtualenv under target/.
"""

import statistics
import sys
import time

from PIL import Image
from escpos.printer import Dummy

QR = "t=20261125T1200&s=11992.00&fn=9999078900012345&i=2&fp=1824628693&n=1"
WIDTH = 32


def logo():
    img = Image.new("L", (64, 64))
    img.putdata([(((i % 64) + (i // 64)) * 4) % 256 for i in range(64 * 64)])
    return img


def row(i):
    name = f"Товар с длинным названием номер {i}"
    qty, total = "2 x 149,90", "299,80"
    right = f" {qty} {total}"
    out = []
    first = WIDTH - len(right)
    out.append(name[:first].ljust(first) + right)
    rest = name[first:]
    while rest:
        out.append(rest[:WIDTH])
        rest = rest[WIDTH:]
    return "\n".join(out) + "\n"


def receipt(profile, native_qr, image):
    p = Dummy(profile=profile)
    # 58 mm paper, as in the Rust benchmark; the generic profile leaves the
    # width unset and python-escpos then cannot centre the raster QR.
    p.profile.profile_data.setdefault("media", {}).setdefault("width", {})["pixels"] = 384
    p.image(image)
    p.set(align="center", bold=True, double_width=True)
    p.text("ООО «Ромашка»\n")
    p.set(align="left", bold=False, double_width=False)
    for i in range(40):
        p.text(row(i))
    p.qr(QR, size=6, ec=0, native=native_qr)
    p.cut(mode="PART")
    return p.output


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    image = logo()
    for profile, native in (("TM-T20II", True), ("default", False)):
        size = len(receipt(profile, native, image))
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            receipt(profile, native, image)
            times.append(time.perf_counter() - t)
        kind = "native QR" if native else "raster QR"
        print(
            f"python-escpos {profile} ({kind}): {size} bytes, "
            f"median {statistics.median(times) * 1e6:.0f} µs, "
            f"min {min(times) * 1e6:.0f} µs per receipt ({rounds} rounds)"
        )


if __name__ == "__main__":
    main()
