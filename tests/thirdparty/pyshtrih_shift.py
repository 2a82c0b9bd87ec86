"""A whole shift on `posbridge sim shtrih` through pyshtrih (PyPI), as a new
user would drive it: connect (ENQ, FCh), status, text, open shift, two sales,
close paid in cash with change, X report, Z report. Exits non-zero on the
first failure; prints what it did for the Rust test to read.

Usage: python pyshtrih_shift.py PTY_PATH
"""
import sys

import pyshtrih

port = sys.argv[1]
# pyshtrih opens the port at 9600 baud; a pseudo-terminal ignores the rate.
dev = pyshtrih.ShtrihM01F(port=port, baudrate=9600, timeout=5)
dev.connect()
print("model:", dev.dev_info["Модель устройства"], dev.dev_info["Название устройства"])
assert dev.dev_info["Название устройства"] == "ШТРИХ-М-01Ф", dev.dev_info

st = dev.state()
print("mode:", st["Режим ФР"].num, "submode:", st["Подрежим ФР"].state)
full = dev.full_state()
print("serial:", full["Заводской номер"], "last shift:", full["Номер последней закрытой смены"])
print("inn:", full["ИНН"], "date:", full["Дата"], "time:", full["Время"])
assert full["Заводской номер"] == 12345678, full
assert full["Номер последней закрытой смены"] == 0, full

dev.print_string("ТЕСТ PYSHTRIH")
dev.open_shift()
# Quantity in thousandths, price in kopecks, tax group 1.
dev.sale(("Молоко 3,2%", 1000, 8990), department_num=1, tax1=1)
dev.sale(("Хлеб", 2000, 4550), department_num=1, tax1=2)
closed = dev.close_check(cash=20000, text="СПАСИБО")
change = closed["Сдача"]
print("change:", change)
assert change == 20000 - 8990 - 2 * 4550, closed
dev.cut()
dev.x_report()
dev.z_report()
full = dev.full_state()
print("last shift after Z:", full["Номер последней закрытой смены"])
assert full["Номер последней закрытой смены"] == 1, full
dev.disconnect()
print("pyshtrih shift ok")
