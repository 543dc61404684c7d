"""CSV export: /sites/<id>/export.zip is the current view, one CSV per panel plus the headline
numbers and the time series, with the same numbers as the page."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from testing import headline, html, panel_rows

pytestmark = [pytest.mark.django_db, pytest.mark.analytics]  # on both stores (make test-chdb)

FRIDAY = "2026-11-20"
PANEL_FILES = [
    "sources.csv",
    "referrers.csv",
    "pages.csv",
    "entry_pages.csv",
    "exit_pages.csv",
    "utm_sources.csv",
    "utm_mediums.csv",
    "utm_campaigns.csv",
    "countries.csv",
    "browsers.csv",
    "operating_systems.csv",
    "devices.csv",
    "events.csv",
]


def export(client: Client, site: Any, **params: str) -> tuple[Any, dict[str, list[list[str]]]]:
    response = client.get(f"/sites/{site.public_id}/export.zip", params)
    assert response.status_code == 200, response.content[:500]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        files = {name: list(csv.reader(io.StringIO(archive.read(name).decode()))) for name in archive.namelist()}
    return response, files


def test_the_zip_has_one_csv_per_panel_and_the_headline_and_timeseries(owner_client, owned_scripted_site):
    response, files = export(owner_client, owned_scripted_site, period="day", date=FRIDAY)
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="example.com_2026-11-20_2026-11-20.zip"'
    assert list(files) == ["visitors.csv", "timeseries.csv", *PANEL_FILES]
    assert files["visitors.csv"] == [
        ["metric", "value", "change"],
        ["visitors", "4", "100"],
        ["visits", "5", "150"],
        ["pageviews", "7", "133"],
        ["views_per_visit", "1.4", "-7"],
        ["bounce_rate", "40", "-10"],
        ["visit_duration", "672", "647"],
    ]
    series = files["timeseries.csv"]
    assert series[0] == ["date", "visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"]
    assert len(series) == 1 + 24
    assert series[1 + 9] == ["2026-11-20 09:00:00", "1", "1", "2", "2.0", "0", "360"]


def test_panel_csvs_have_headers_and_the_pages_numbers(owner_client, owned_scripted_site):
    _, files = export(owner_client, owned_scripted_site, period="day", date=FRIDAY)
    assert files["sources.csv"] == [
        ["source", "visitors", "visits", "pageviews", "bounce_rate", "visit_duration"],
        ["Direct / None", "1", "1", "2", "0", "600"],
        ["Google", "1", "1", "2", "0", "360"],
        ["Hacker News", "1", "1", "1", "100", "0"],
        ["Twitter", "1", "1", "2", "0", "1200"],
        ["newsletter", "1", "1", "1", "100", "1200"],
    ]
    assert files["pages.csv"] == [
        ["page", "visitors", "pageviews", "bounce_rate", "visit_duration"],
        ["/", "4", "4", "25", "840"],
        ["/about", "1", "1", "0", "0"],
        ["/blog", "1", "1", "100", "0"],
        ["/pricing", "1", "1", "0", "0"],
    ]
    assert files["countries.csv"][0] == [
        "country",
        "visitors",
        "visits",
        "pageviews",
        "bounce_rate",
        "visit_duration",
        "percentage",
    ]
    assert files["countries.csv"][1] == ["US", "2", "3", "5", "33", "520", "50"]  # A (2 visits) and C
    assert files["events.csv"] == [
        ["name", "visitors", "events", "conversion_rate", "value"],
        ["Outbound Link: Click", "1", "1", "25.0", "0.00"],
        ["Signup", "1", "1", "25.0", "19.99"],
    ]
    assert files["entry_pages.csv"][0][0] == "entry_page"
    assert files["exit_pages.csv"] == [
        ["exit_page", "visits"],  # exits, as the panel shows them
        ["/", "1"],
        ["/about", "1"],
        ["/blog", "1"],
        ["/docs", "1"],
        ["/pricing", "1"],
    ]


@pytest.mark.sql_store  # reads the Django database's analytics tables: the SQL store only
@pytest.mark.parametrize("filters", ["", "visit:entry_page!=/nowhere"], ids=["rollups", "raw"])
def test_event_values_are_plain_numbers(owner_client, owned_scripted_site, filters):
    from collector.models import DailyBreakdown, Dimension, Event

    # Signup's value becomes $1,234.56 (123456 cents) in the rollup and on the raw event.
    DailyBreakdown.objects.filter(site=owned_scripted_site, dim=Dimension.EVENT, value="Signup").update(
        value_sum=123456
    )
    Event.objects.filter(site=owned_scripted_site, name="Signup").update(value=123456)
    _, files = export(
        owner_client, owned_scripted_site, period="day", date=FRIDAY, **({"filters": filters} if filters else {})
    )
    # A number a spreadsheet reads as one (as the Stats API would write it), not the text "1,234.56".
    assert files["events.csv"][1:] == [
        ["Outbound Link: Click", "1", "1", "25.0", "0.00"],
        ["Signup", "1", "1", "25.0", "1234.56"],
    ]
    raw = zipfile.ZipFile(io.BytesIO(export(owner_client, owned_scripted_site, period="day", date=FRIDAY)[0].content))
    assert "Signup,1,1,25.0,1234.56\r\n" in raw.read("events.csv").decode()
    # The page shows it for people, with the separator.
    page = html(owner_client.get(f"/sites/{owned_scripted_site.public_id}/", {"period": "day", "date": FRIDAY}))
    assert panel_rows(page, "events")[1] == ["Signup", "1", "1", "25%", "1,234.56"]


def test_the_export_matches_the_page_for_every_panel(owner_client, owned_scripted_site):
    page = html(owner_client.get(f"/sites/{owned_scripted_site.public_id}/", {"period": "day", "date": FRIDAY}))
    _, files = export(owner_client, owned_scripted_site, period="day", date=FRIDAY)
    for name in PANEL_FILES:
        key = name.removesuffix(".csv")
        shown = [row[0].removesuffix(" ↗") for row in panel_rows(page, key)]  # the referrer's link mark
        if key == "countries":
            shown = [label.split(" ", 1)[1] for label in shown]  # the flag
        exported = [row[0] for row in files[name][1:]]
        assert exported == shown, name
        visitors_on_page = [row[1] for row in panel_rows(page, key)]
        assert [row[1] for row in files[name][1:]] == visitors_on_page, name
    numbers = headline(page)
    assert numbers["Unique visitors"][0] == files["visitors.csv"][1][1]


def test_the_export_respects_filters_and_period(owner_client, owned_scripted_site):
    response, files = export(
        owner_client, owned_scripted_site, period="custom", date="2026-11-19,2026-11-20", filters="visit:country==DE"
    )
    assert response["Content-Disposition"] == 'attachment; filename="example.com_2026-11-19_2026-11-20.zip"'
    # B on Friday and F on Thursday: both iPhones from Germany.
    assert files["visitors.csv"][1] == ["visitors", "2", ""]
    assert files["countries.csv"][1:] == [["DE", "2", "2", "3", "50", "690", "100"]]
    assert [row[0] for row in files["timeseries.csv"][1:]] == ["2026-11-19", "2026-11-20"]
    assert [row[1] for row in files["timeseries.csv"][1:]] == ["1", "1"]
    assert [row[0] for row in files["pages.csv"][1:]] == ["/", "/pricing"]


def test_the_export_link_on_the_page_carries_the_view(owner_client, owned_scripted_site):
    page = html(
        owner_client.get(
            f"/sites/{owned_scripted_site.public_id}/",
            {"period": "7d", "date": FRIDAY, "filters": "visit:browser==Chrome"},
        )
    )
    href = next(a for a in page.all("a") if a.attrs.get("download") is not None).attrs["href"]
    assert href.startswith(f"/sites/{owned_scripted_site.public_id}/export.zip?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}
    assert params == {"period": "7d", "date": FRIDAY, "filters": "visit:browser==Chrome"}
    response, files = export(owner_client, owned_scripted_site, **params)
    assert response.status_code == 200
    assert len(files["timeseries.csv"]) == 1 + 7


def test_a_bad_export_query_is_a_400(owner_client, owned_scripted_site):
    response = owner_client.get(f"/sites/{owned_scripted_site.public_id}/export.zip", {"period": "nope"})
    assert response.status_code == 400
    assert b"Cannot export this view" in response.content


@pytest.mark.sql_store  # reads the Django database's analytics tables: the SQL store only
@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("https://evil.example")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1)",
        " =1+1",  # spreadsheets skip leading spaces before the sign
        "\u00a0=1+1",  # no-break space
        "\u3000=1+1",  # ideographic space
        "\n=1+1",
        "\r\n@SUM(1)",
        "\t=1+1",
        "\u200b=1+1",  # zero-width space
        "\uff1d1+1",  # full-width equals sign
    ],
)
def test_cells_that_look_like_formulas_are_defused(owner_client, owned_scripted_site, value):
    from collector.models import DailyBreakdown, Dimension

    row = DailyBreakdown.objects.filter(site=owned_scripted_site, dim=Dimension.UTM_CAMPAIGN).first()
    row.value = value
    row.save()
    _, files = export(owner_client, owned_scripted_site, period="day", date=FRIDAY)
    assert files["utm_campaigns.csv"][1][0] == "'" + value


@pytest.mark.sql_store  # reads the Django database's analytics tables: the SQL store only
def test_ordinary_text_and_negative_numbers_are_left_as_they_are(owner_client, owned_scripted_site):
    from collector.models import DailyBreakdown, Dimension

    row = DailyBreakdown.objects.filter(site=owned_scripted_site, dim=Dimension.UTM_CAMPAIGN).first()
    row.value = "spring sale = 20% off"
    row.save()
    _, files = export(owner_client, owned_scripted_site, period="day", date=FRIDAY)
    assert files["utm_campaigns.csv"][1][0] == "spring sale = 20% off"
    # A change can be negative; it is a number, not a formula to defuse.
    assert ["views_per_visit", "1.4", "-7"] in files["visitors.csv"]
