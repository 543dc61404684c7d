"""The dashboard of one site (/sites/<id>/), its shared read-only twin (/share/<token>/), the
realtime counter (JSON) and the CSV export (a zip, one CSV per panel).

Every view parses the query string into a DashboardQuery, asks report_data.build_report for the
numbers and shapes them (numbers and dates for people: dashboard/formatting.py); no SQL here.
Query string: period=day|yesterday|7d|30d|month|lastmonth|6mo|12mo|custom, date=YYYY-MM-DD
(anchor) or YYYY-MM-DD,YYYY-MM-DD (custom; or from= and to=, as the no-JavaScript range form sends
them), filters= (selectors' syntax), metric= (the charted metric), interval=hour|date|month,
compare=off. A bad value is a 400 page saying what is wrong.

Access: anyone signed in sees a site they own or are a teammate on; an outsider gets the same
404 as for an unknown id; an anonymous visitor of /sites/<id>/ (and its export) is sent to the
login page, never shown data; the realtime JSON answers an anonymous caller 404.

Modules:

- query: the query string (DashboardQuery), filters as text and chips, period navigation.
- page: the dashboard page's context and the owner's views (site_dashboard, site_realtime, site_export).
- share: shared links (lookup, password unlock) and their views (share_dashboard, share_realtime, share_export).
- export: the zip of CSV files.
"""
