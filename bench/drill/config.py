"""The attack drill's world: its database and Redis db, sites, client addresses, User-Agents
and attack patterns (bench/attack.py describes the drill)."""

from __future__ import annotations

import ipaddress

from bench.common import CHROME_UA, ROOT

DB_NAME = "bench_attack"
REDIS_URL = "redis://127.0.0.1:6379/11"
RESULTS_MD = ROOT / "docs" / "attack-results.md"
REPORT_DATE = "2026-11-26"
ANALYSIS_START = "<!-- analysis:start -->"
ANALYSIS_END = "<!-- analysis:end -->"

CUSTOMER_SITES = [f"customer{i}.example" for i in range(8)]
LEGIT_SITE_WEIGHTS = (0.5, 0.3, 0.2)  # legit traffic goes to the first three customer sites
COST_SITE = "cost.example"  # the cost phase writes here, away from the customers' numbers

ERROR = -1  # status of a request that got no HTTP answer (refused, reset, timed out)
TIMEOUT = 10.0
ACCEPTED = "202-accepted"
CATEGORIES = ("403", "429", "202-dropped", "400", "413", "404", ACCEPTED, "5xx", "error", "other")

LEGIT_UAS = (
    CHROME_UA,
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
)
ATTACKER_UA = LEGIT_UAS[0]  # the flood, spoof and sweep pass as Chrome: they want to be counted
BOT_UAS = (
    "python-requests/2.32.3",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
)
PAGES = ("/", "/pricing", "/features", "/about", "/contact", "/docs/getting-started", "/docs/api", "/blog/")
REFERRERS = (None, None, None, "https://www.google.com/", "https://duckduckgo.com/", "https://news.ycombinator.com/")
EVENTS = ("Signup", "Download", "Outbound Link: Click", "Newsletter")
WIDTHS = (390, 414, 768, 1280, 1366, 1440, 1536, 1920)

# IPs: legit visitors 198.18.0.1..; attackers 198.19.x; the cost phase's fresh IPs 198.18.64.0/18.
FLOOD_IP = "198.19.1.1"
SPOOF_IP = "198.19.2.1"
SWEEP_IP = "198.19.3.1"
BOT_IPS = tuple(f"198.19.4.{i}" for i in range(1, 6))
BODY_IPS = ("198.19.5.1", "198.19.5.2", "198.19.5.3")
FALLBACK_BANNED_IP = "198.19.8.8"  # banned by hand for the cost phase if the flood IP was not banned
WARMUP_IP = "198.19.9.9"
OFFICE_IP, OFFICE_PEOPLE = "198.18.200.1", 25  # legit people behind one NAT address
CGNAT_IP, CGNAT_PEOPLE = "198.18.201.1", 40
GROUPS = {
    "distinct": "visitors with an IP each",
    "office": f"office NAT: {OFFICE_PEOPLE} people, 1 IP, 1 UA, customer0",
    "cgnat": f"mobile CGNAT: {CGNAT_PEOPLE} people, 1 IP, 2 UAs, all 8 customer sites",
}
COST_NET = ipaddress.ip_network("198.18.64.0/18")

PATTERNS = {
    "flood": "(a) single-IP flood, 2 connections flat out",
    "spoof": "(b) spoofed X-Forwarded-For, 1 connection flat out",
    "sweep": "(c) many-sites sweep, one IP over 8 sites, 20 req/s",
    "bot": "(d) bot UAs, 5 IPs x 4 req/s",
    "body": "(e) oversized / malformed bodies, 3 IPs (20 + 4 + 4 req/s)",
}
