"""Stop 22: COPY text for the import's prepared rows, per row through TextFormatter.write_row + end() (old) against
psycopg's format_row_text into one buffer (new), on rows shaped like S1's search terms and the orders' rows.
Run: .venv/bin/python docs/perf/import/stop22_copy_text.py (output: stop22-copy-text.txt)."""
import pickle, time
from psycopg._copy_base import TextFormatter, format_row_text
from psycopg.adapt import Transformer
from datetime import datetime, UTC
rows_st = [("mA", f"term{i%97}", f"ORD-{i:08d}") for i in range(100000)]
rows_o = [(f"ORD-{i:08d}", "mA", "bX", None, "awaiting_shipment", 12900, 0, datetime(2026,3,1,tzinfo=UTC), 1, '{"x": "' + "a"*900 + '"}') for i in range(10000)]
def old(rows):
    f = TextFormatter(Transformer()); out = []
    for r in rows:
        f.write_row(r); out.append(bytes(f.end()))
    return out
def new(rows, lines=True):
    tx = Transformer(); buf = bytearray()
    if not lines:
        for r in rows: format_row_text(r, tx, buf)
        return [bytes(buf)]
    ends = []
    for r in rows:
        format_row_text(r, tx, buf); ends.append(len(buf))
    data = bytes(buf)
    return [data[a:b] for a, b in zip([0, *ends], ends)]
assert b"".join(old(rows_o)) == b"".join(new(rows_o)) == new(rows_o, False)[0]
assert old(rows_st) == new(rows_st)
for name, rows in (("search_terms", rows_st), ("orders", rows_o)):
    for k in range(3):
        t=time.process_time(); old(rows); a=time.process_time()-t
        t=time.process_time(); new(rows); b=time.process_time()-t
        t=time.process_time(); new(rows, False); c=time.process_time()-t
        print(name, f"old {1e6*a/len(rows):.2f} µs/row  new lines {1e6*b/len(rows):.2f}  new joined {1e6*c/len(rows):.2f}")
