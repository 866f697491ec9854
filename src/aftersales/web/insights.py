"""Insights of a shop (S1, S3, S5): charts drawn on the server as SVG, each with a CSV export.

Merchant staff see their own shop; platform agents pick a shop (or all shops). The figures come from
:mod:`aftersales.service.insights`; this module only lays them out (bar geometry) and writes CSV.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from aftersales import i18n
from aftersales.domain.messages import N_
from aftersales.service import insights as service
from aftersales.service.errors import NotFound, ServiceError

from .app import not_found_page
from .deps import Staff, ctx_of, explain, lang_of, render

router = APIRouter(prefix="/app", include_in_schema=False)

ShopId = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")]
CATEGORY_LABELS = {"product": N_("product"), "logistics": N_("logistics"), "service": N_("service"),
                   "buyer": N_("buyer's own reason"), "other": N_("other")}
MEASURES = {"first_response": N_("first response"), "resolution": N_("resolution")}
#: Horizontal bar charts: the label column and the bar area, in SVG user units.
LABEL_W, BAR_W, ROW_H = 150, 250, 30
TREND_H, TREND_W = 200, 900
TOP_PRODUCTS = 12


def percent(permille: int | None) -> str:
    """Tenths of a percent as text, ``615`` → ``61.5`` (integers all the way: the CSV matches the page)."""
    return "" if permille is None else f"{permille // 10}.{permille % 10}"


def duration(seconds: int | None, lang: str) -> str:
    """A duration for people: ``2 d 3 h``, ``5 h 07 min``, ``12 min``."""
    if seconds is None:
        return "—"
    minutes = seconds // 60
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return i18n.translate(N_("{d} d {h} h"), lang).format(d=days, h=hours)
    if hours:
        return i18n.translate(N_("{h} h {m} min"), lang).format(h=hours, m=f"{mins:02d}")
    return i18n.translate(N_("{m} min"), lang).format(m=mins)


def share_of_cases(permille: int, total: int, lang: str) -> str:
    """A share with its sample (S3): ``75.0 % of 4 cases``."""
    return i18n.translate(N_("{share} of {n} cases"), lang).format(share=f"{percent(permille)} %", n=total)


def return_rate(item: dict[str, Any], lang: str) -> str:
    """A return rate with its sample (S5): ``12.0 % of 250 units (30 cases)``; below the minimum sample only the
    sample is said: ``too few units sold to show a rate (4)``."""
    if item["rate_permille"] is None:
        return i18n.translate(N_("too few units sold to show a rate ({n})"), lang).format(n=item["units_sold"])
    return i18n.translate(N_("{share} of {n} units ({k} cases)"), lang).format(
        share=f"{percent(item['rate_permille'])} %", n=item["units_sold"], k=item["return_cases"])


def hbars(rows: list[tuple[str, int, str]]) -> dict[str, Any]:
    """Geometry of a horizontal bar chart: (label, value, text shown after the bar) per row."""
    top = max((v for _, v, _ in rows), default=0) or 1
    bars = [{"label": label, "text": text, "y": i * ROW_H, "w": value * BAR_W // top} for i, (label, value, text) in enumerate(rows)]
    return {"bars": bars, "height": max(len(rows), 1) * ROW_H, "label_w": LABEL_W, "bar_w": BAR_W,
            "width": LABEL_W + BAR_W + 120}


def trend_chart(weeks: list[dict[str, Any]], tz: str) -> dict[str, Any]:
    """Geometry of the weekly trend: opened and closed side by side, one group per week."""
    top = max([w["opened"] for w in weeks] + [w["closed"] for w in weeks] + [1])
    slot = TREND_W // max(len(weeks), 1)
    zone = ZoneInfo(tz)
    cols = []
    for i, w in enumerate(weeks):
        ho, hc = w["opened"] * TREND_H // top, w["closed"] * TREND_H // top
        cols.append({"x": 40 + i * slot, "bw": max(slot // 2 - 2, 2), "ho": ho, "hc": hc, "opened": w["opened"],
                     "closed": w["closed"], "label": datetime.fromisoformat(w["week_start"]).astimezone(zone).strftime("%m-%d")})
    return {"cols": cols, "top": top, "height": TREND_H, "width": 40 + TREND_W + 10, "every": max(1, len(weeks) // 12)}


def _charts(data: dict[str, Any], lang: str, tz: str) -> dict[str, Any]:
    def tr(text: str) -> str:
        return i18n.translate(text, lang)

    cats = data["reasons"]["categories"]
    times = data["times"]["measures"]
    rows: list[tuple[str, int, str]] = []
    for m in times:
        for p in ("p50", "p90"):
            value = m[f"{p}_seconds"]
            rows.append((f"{tr(MEASURES[m['measure']])} {p}", value or 0, duration(value, lang)))
    products = data["returns"]["items"][:TOP_PRODUCTS]
    total = data["reasons"]["total"]
    return {
        "reasons": hbars([(tr(CATEGORY_LABELS[c["category"]]), c["cases"],
                           f"{c['cases']} ({share_of_cases(c['share_permille'], total, lang)})") for c in cats]),
        "times": hbars(rows),
        "returns": hbars([(p["sku"], p["rate_permille"] or 0, return_rate(p, lang)) for p in products]),
        "trend": trend_chart(data["trend"]["weeks"], tz),
    }


@router.get("/insights", response_class=HTMLResponse)
def insights_page(request: Request, user: Staff, merchant: ShopId = "",
                  weeks: Annotated[int, Query(ge=1, le=52)] = 12) -> Response:
    """S1/S3/S5 for a shop: reason categories, response and resolution times, return rate per product, the trend."""
    ctx, lang = ctx_of(request), lang_of(request)
    weeks = weeks if weeks in service.WEEKS else 12
    try:
        data = service.insights(ctx, user.principal, merchant_id=merchant or None, weeks=weeks)
    except NotFound as exc:
        return not_found_page(request, exc)
    except ServiceError as exc:
        return render(request, "message.html", status_code=exc.status, title=i18n.translate(N_("Insights"), lang),
                      message=explain(request, exc))
    shops = service.shops(ctx, user.principal)
    shop = next((s for s in shops if s["id"] == data["merchant_id"]), None)
    query = {"weeks": str(weeks), **({"merchant": data["merchant_id"]} if user.side == "platform" and data["merchant_id"] else {})}
    return render(request, "insights/page.html", d=data, charts=_charts(data, lang, ctx.policy.timezone), shops=shops,
                  shop=shop, weeks=weeks, weeks_options=service.WEEKS, query=query, percent=percent,
                  duration=lambda s: duration(s, lang), categories=CATEGORY_LABELS, measures=MEASURES,
                  min_sample=service.MIN_SAMPLE_UNITS)


# --- CSV exports ---------------------------------------------------------------------------------------------------
#: OWASP "CSV injection": a cell a spreadsheet may run as a formula starts with one of these — also after leading
#: spaces, NBSP or other blanks, which spreadsheets skip — or with a tab, CR or LF (fullwidth forms included: some
#: spreadsheets fold them).
FORMULA_STARTS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
CONTROL_STARTS = frozenset("\t\r\n")
BLANKS = "\u200b\u200c\u200d\u2060\ufeff"  # zero-width characters str.isspace does not count


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (a product title may start with ``=``, ``@`` …): such
    text gets a leading single quote. Numbers are written as they are (a count is never a formula)."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if text[:1] in CONTROL_STARTS or text.lstrip().lstrip(BLANKS).lstrip()[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def _rows(name: str, data: dict[str, Any], tz: str) -> list[list[Any]]:
    if name == "reasons":
        total = data["reasons"]["total"]  # the sample of every share
        out: list[list[Any]] = [["level", "code", "category", "cases", "share_percent", "of_cases"]]
        out += [["category", c["category"], c["category"], c["cases"], percent(c["share_permille"]), total]
                for c in data["reasons"]["categories"]]
        out += [["reason", r["reason"], r["category"], r["cases"], percent(r["share_permille"]), total]
                for r in data["reasons"]["reasons"]]
        return out
    if name == "times":
        return [["measure", "cases", "p50_seconds", "p90_seconds"]] + [
            [m["measure"], m["cases"], m["p50_seconds"], m["p90_seconds"]] for m in data["times"]["measures"]]
    if name == "returns":
        # S5: the export keeps the rate over any sample; units_sold is its sample and sample_below_minimum says
        # whether the page withholds it (fewer than MIN_SAMPLE_UNITS units sold).
        least = data["returns"]["min_sample_units"]
        return [["sku", "title", "units_sold", "return_cases", "return_rate_percent", "sample_below_minimum"]] + [
            [p["sku"], p["title"], p["units_sold"], p["return_cases"], percent(p["exact_rate_permille"]),
             "yes" if p["units_sold"] < least else "no"] for p in data["returns"]["items"]]
    zone = ZoneInfo(tz)
    return [["week_start", "opened", "closed"]] + [
        [datetime.fromisoformat(w["week_start"]).astimezone(zone).date().isoformat(), w["opened"], w["closed"]]
        for w in data["trend"]["weeks"]]


@router.get("/insights/{name}.csv")
def insights_csv(request: Request, user: Staff, name: Annotated[str, Path(pattern=r"^(reasons|times|returns|trend)$")],
                 merchant: ShopId = "", weeks: Annotated[int, Query(ge=1, le=52)] = 12) -> Response:
    """One figure as CSV (UTF-8 with BOM so spreadsheets read Chinese titles right)."""
    ctx = ctx_of(request)
    try:
        data = service.insights(ctx, user.principal, merchant_id=merchant or None,
                                weeks=weeks if weeks in service.WEEKS else 12, only=name)
    except NotFound as exc:
        return not_found_page(request, exc)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in _rows(name, data, ctx.policy.timezone):
        writer.writerow([csv_cell(v) for v in row])
    shop = data["merchant_id"] or "all"
    filename = f"insights-{name}-{shop}-{data['until'][:10]}.csv"
    return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, no-store"})
