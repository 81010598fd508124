"""The report's style sheet, inlined into the page (no external fonts or files)."""

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f6f7fb; --card:#fff; --blue:#2563eb;
  --good:#15803d; --good-bg:#ecfdf3; --warn:#b45309; --warn-bg:#fffbeb; --bad:#b91c1c; --bad-bg:#fef2f2; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.wrap { max-width: 1240px; margin: 0 auto; padding: 0 24px; }
header { background: linear-gradient(120deg, #1e3a8a, #2563eb); color: #fff; padding: 22px 0 14px; }
header h1 { margin: 0; font-size: 24px; letter-spacing: .2px; }
header p { margin: 4px 0 12px; opacity: .85; font-size: 13px; }
nav { display: flex; flex-wrap: wrap; gap: 8px; }
nav a { color: #fff; text-decoration: none; background: rgba(255,255,255,.14); padding: 4px 10px;
  border-radius: 999px; font-size: 13px; }
nav a small { opacity: .75; margin-left: 4px; }
nav a:hover { background: rgba(255,255,255,.28); }
main { padding: 22px 24px 8px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 14px; padding: 20px 24px;
  margin: 0 0 22px; box-shadow: 0 1px 2px rgba(16,24,40,.04); }
h2 { margin: 0 0 6px; font-size: 20px; display: flex; flex-wrap: wrap; align-items: center; gap: 8px; }
h3 { margin: 0 0 8px; font-size: 15px; }
.badge { font-size: 12px; font-weight: 500; background: #eef2ff; color: #3730a3; border-radius: 999px;
  padding: 2px 9px; }
.lede { margin: 4px 0 14px; font-size: 15px; max-width: 980px; }
.note { background: var(--warn-bg); color: var(--warn); border-radius: 8px; padding: 8px 12px; font-size: 13px; }
.stats { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; margin: 0 0 16px; }
.stat { border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; background: #fbfcfe; }
.stat .k { font-size: 12px; color: var(--muted); }
.stat .v { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.stat .v small { font-size: 14px; color: var(--muted); margin-left: 2px; font-weight: 500; }
.stat .s { font-size: 12px; color: var(--muted); }
.stat.good { border-color: #bbf7d0; background: var(--good-bg); }
.stat.warn { border-color: #fde68a; background: var(--warn-bg); }
.stat.bad { border-color: #fecaca; background: var(--bad-bg); }
table.metrics { border-collapse: collapse; margin: 0 0 18px; font-size: 14px; font-variant-numeric: tabular-nums; }
table.metrics th, table.metrics td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: right; }
table.metrics thead th { font-size: 12px; text-transform: uppercase; letter-spacing: .4px; color: var(--muted);
  border-bottom: 2px solid var(--line); }
table.metrics tbody th { text-align: left; font-weight: 550; }
table.metrics tbody th small { font-weight: 400; color: var(--muted); font-size: 12px; margin-left: 8px; }
table.metrics tbody tr:hover { background: #f9fafb; }
td.good { color: var(--good); font-weight: 600; } td.warn { color: var(--warn); font-weight: 600; }
td.bad { color: var(--bad); font-weight: 600; }
.best { font-size: 11px; background: var(--good-bg); color: var(--good); border-radius: 999px; padding: 1px 7px; }
.group { margin: 0 0 18px; }
small.ci { display: block; color: var(--muted); font-size: 11px; }
table.compare { width: 100%; table-layout: auto; }
table.compare th, table.compare td { padding: 5px 6px; }
table.compare thead th { font-size: 11px; letter-spacing: .2px; text-transform: none; white-space: normal; }
table.compare td.vcell { text-align: left; font-weight: 600; white-space: nowrap; }
td.v-forgotten { color: var(--good); } td.v-not-forgotten, td.v-damaged { color: var(--bad); }
td.v-inconclusive, td.v-unchanged { color: var(--warn); }
.panel { margin: 0; border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; background: #fff;
  min-width: 0; }
.panel.wide { margin: 0 0 16px; }
.panel table.metrics { margin: 0; min-width: 60%; }
img.plot { display: block; max-width: 100%; height: auto; margin: 4px auto 0; }
figcaption, .caption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(112px, 1fr)); gap: 12px; margin: 6px 0; }
figure.sample { margin: 0; text-align: center; }
img.thumb { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated; border-radius: 6px;
  border: 1px solid var(--line); background: #000; }
figure.sample figcaption { font-size: 12px; color: var(--ink); }
figure.sample ol { list-style: none; margin: 4px 0; padding: 0; }
figure.sample li { display: grid; grid-template-columns: 1fr 36px 32px; gap: 4px; align-items: center;
  font-size: 12px; text-align: left; }
figure.sample li .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
figure.sample li .bar { height: 6px; background: #eef2f7; border-radius: 3px; overflow: hidden; }
figure.sample li .bar i { display: block; height: 100%; background: #94a3b8; }
figure.sample li.hit .name { color: var(--good); font-weight: 650; }
figure.sample li.hit .bar i { background: #22c55e; }
figure.sample li .p { text-align: right; color: var(--muted); font-variant-numeric: tabular-nums; }
figure.sample .others { color: var(--muted); font-size: 11px; }
figure.sample .id { color: var(--muted); font-size: 11px; margin-top: 2px; }
details summary { cursor: pointer; font-weight: 600; }
pre { background: #0f172a; color: #e2e8f0; padding: 12px 14px; border-radius: 8px; overflow: auto; max-height: 420px;
  font-size: 12px; line-height: 1.4; }
footer { color: var(--muted); font-size: 12px; padding: 4px 24px 30px; }
.verdict { border-left: 6px solid #888; background: #f5f5f5; padding: .6em 1em; margin: .6em 0 1em; }
.verdict strong { font-size: 1.15em; letter-spacing: .02em; }
.verdict ul { margin: .3em 0 0 1.2em; padding: 0; }
.verdict .warn { color: #8a5a00; }
.v-forgotten { border-color: #2e7d32; background: #edf7ee; }
.v-not-forgotten, .v-damaged { border-color: #c62828; background: #fdecea; }
.v-inconclusive, .v-unchanged { border-color: #e0a000; background: #fff8e1; }
"""
