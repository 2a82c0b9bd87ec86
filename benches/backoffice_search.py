#!/usr/bin/env python3
"""The back office's customer search on a million customers, on SQLite:
the word index (`account_words`, migration 15) side by side with the
substring scan it replaced, on the same file. Run: python3
benches/backoffice_search.py [DB]; the file is built once (about a minute).
The statements are the ones src/ledger/accounts/search.rs builds."""
import os, random, sqlite3, statistics, sys, time, unicodedata

N = 1_000_000
path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/posbridge-search-1m.db"
FIRST = ["Иван", "Анна", "Пётр", "Мария", "Ольга", "Сергей", "Олег", "Елена"]
LAST = ["Иванов", "Петров", "Сидоров", "Смирнов", "Кузнецов", "Попов", "Васильев", "Соколов"]

def words(text):
    out = []
    for w in "".join(c if c.isalnum() else " " for c in text).split():
        w = w.lower().replace("ё", "е")[:64]
        if w not in out:
            out.append(w)
    return out

if not os.path.exists(path):
    random.seed(7)
    c = sqlite3.connect(path)
    c.executescript("""
    CREATE TABLE accounts(id INTEGER PRIMARY KEY, status TEXT, name TEXT, phone TEXT, email TEXT);
    CREATE UNIQUE INDEX accounts_phone ON accounts(phone) WHERE phone IS NOT NULL;
    CREATE UNIQUE INDEX accounts_email ON accounts(email) WHERE email IS NOT NULL;
    CREATE TABLE cards(number TEXT PRIMARY KEY, account_id INTEGER);
    CREATE INDEX cards_account ON cards(account_id);
    CREATE TABLE account_words(word TEXT NOT NULL, account_id INTEGER NOT NULL, PRIMARY KEY (word, account_id));
    CREATE INDEX account_words_account ON account_words(account_id);
    """)
    rows, cards, idx = [], [], []
    for i in range(1, N + 1):
        name = f"{random.choice(FIRST)} {random.choice(LAST)}{i}"
        email = f"u{i}@example.ru"
        rows.append((i, "active", name, f"+7916{i:07d}", email))
        cards.append((f"6035{i:012d}", i))
        idx.extend((w, i) for w in words(name) + words(email) if True)
    c.executemany("INSERT INTO accounts VALUES(?,?,?,?,?)", rows)
    c.executemany("INSERT INTO cards VALUES(?,?)", cards)
    c.executemany("INSERT OR IGNORE INTO account_words VALUES(?,?)", idx)
    c.commit()
    c.close()

c = sqlite3.connect(path)
# As the till's schema has it (a file built by an older copy of this script may lack it).
c.execute("CREATE INDEX IF NOT EXISTS cards_account ON cards(account_id)")
OLD = """SELECT a.id FROM accounts a WHERE a.id > ?1 AND (
 lower(a.name) LIKE ?2 ESCAPE '\\' OR lower(a.email) LIKE ?2 ESCAPE '\\'
 OR (?3 IS NOT NULL AND a.phone LIKE ?3 ESCAPE '\\')
 OR (?4 IS NOT NULL AND EXISTS (SELECT 1 FROM cards c WHERE c.account_id = a.id AND c.number LIKE ?4 ESCAPE '\\')))
 ORDER BY a.id LIMIT 21"""
END = chr(0x10FFFF)
WORD = """SELECT a.id FROM accounts a WHERE a.id IN (
 SELECT w0.account_id FROM account_words w0 WHERE w0.word >= ?2 AND w0.word < ?3 AND w0.account_id > ?1)
 ORDER BY a.id LIMIT 21"""
PHONE = """SELECT a.id FROM accounts a WHERE a.id IN (SELECT id FROM accounts WHERE phone = ?2 AND id > ?1) ORDER BY a.id LIMIT 21"""
CARD = """SELECT a.id FROM accounts a WHERE a.id IN (SELECT account_id FROM cards WHERE number = ?2 AND account_id > ?1) ORDER BY a.id LIMIT 21"""
DIGITS = """SELECT a.id FROM accounts a WHERE a.id IN (
 SELECT account_id FROM cards WHERE number LIKE ?2 ESCAPE '\\' AND account_id > ?1
 UNION SELECT id FROM accounts WHERE phone LIKE ?3 ESCAPE '\\' AND id > ?1) ORDER BY a.id LIMIT 21"""

def ms(sql, args, n=3):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); rows = c.execute(sql, args).fetchall(); ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts), len(rows)

cases = [
    ("a common surname", (OLD, (0, "%иванов%", None, None)), (WORD, (0, "иванов", "иванов" + END))),
    ("a rare surname", (OLD, (0, "%кузнецов999999%", None, None)), (WORD, (0, "кузнецов999999", "кузнецов999999" + END))),
    ("a whole phone", (OLD, (0, "%+79160999999%", "+79160999999", None)), (PHONE, (0, "+79160999999"))),
    ("a whole card", (OLD, (0, "%6035000000999999%", "%6035000000999999%", "%6035000000999999")), (CARD, (0, "6035000000999999"))),
    ("last 6 digits of a card", (OLD, (0, "%999999%", "%999999%", "%999999")), (DIGITS, (0, "%999999", "%999999%"))),
]
print(f"{'query':28} {'substring scan':>16} {'word index':>12} {'ratio':>7}")
for label, old, new in cases:
    (o, on), (w, wn) = ms(*old), ms(*new)
    print(f"{label:28} {o:13.2f} ms {w:9.2f} ms {w / o:7.3f}   ({on} / {wn} hits)", flush=True)
