"""Owner-facing pages: accounts.py (sign-up, sign-in, invitations), sites.py (site list, add,
settings, teammates, shared links, API keys), stats.py (the dashboard, shared dashboards, export)."""
