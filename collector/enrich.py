"""Reduce what a request tells us to coarse, non-personal facts.

UA -> browser / OS / device class / bot flag (ua-parser with its Rust resolver, and the
crawler-user-agents list); referrer -> host+path and a source name (Snowplow's referer-parser
dataset plus a few sources newer than it). Nothing here keeps the raw strings.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit

import re2
from crawleruseragents import CRAWLER_USER_AGENTS_DATA
from referer_parser import Referer
from ua_parser import parse as parse_ua

# The crawler list is ~1,500 patterns: Python's re needs ~1 ms to scan a UA with them, RE2's DFA
# ~5 us. The cache below only helps repeated UAs, and a flood rotates them.
_re2_options = re2.Options()
_re2_options.max_mem = 64 << 20
_re2_options.log_errors = False
_CRAWLERS = re2.compile("|".join(item["pattern"] for item in CRAWLER_USER_AGENTS_DATA), _re2_options)

# Sources newer than the referer-parser dataset (or missing from it). Host -> name.
EXTRA_SOURCES = {
    "chatgpt.com": "ChatGPT",
    "chat.openai.com": "ChatGPT",
    "perplexity.ai": "Perplexity",
    "claude.ai": "Claude",
    "gemini.google.com": "Gemini",
    "copilot.microsoft.com": "Copilot",
    "bsky.app": "Bluesky",
    "threads.net": "Threads",
    "threads.com": "Threads",
    "mastodon.social": "Mastodon",
    "x.com": "Twitter",
    "t.co": "Twitter",
    "duckduckgo.com": "DuckDuckGo",
    "kagi.com": "Kagi",
    "search.brave.com": "Brave Search",
    "lobste.rs": "Lobsters",
    "news.ycombinator.com": "Hacker News",
    "old.reddit.com": "Reddit",
    "out.reddit.com": "Reddit",
    "github.com": "GitHub",
    "linkedin.com": "LinkedIn",
    "lnkd.in": "LinkedIn",
    "producthunt.com": "Product Hunt",
}

# ua-parser reports e.g. "Chrome Mobile iOS"; the dashboard shows the browser, not the build.
_BROWSER_SUFFIXES = (" Mobile iOS", " Mobile WebView", " Mobile", " iOS")
_OS_NAMES = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
_HEADLESS_MARKERS = ("HeadlessChrome", "PhantomJS", "Headless", "Lighthouse", "Electron")


@dataclass(frozen=True)
class Agent:
    browser: str
    os: str
    device: str  # Mobile / Tablet / Desktop from the UA; refined by screen width when known
    bot: bool


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


MAX_FAMILY = 60  # Event.browser / Event.os


@functools.lru_cache(maxsize=20_000)
def parse_agent(user_agent: str) -> Agent:
    if not user_agent or len(user_agent) < 10:
        return Agent("", "", "", True)
    if any(marker in user_agent for marker in _HEADLESS_MARKERS) or _CRAWLERS.search(user_agent):
        return Agent("", "", "", True)
    result = parse_ua(user_agent)
    if result.device and result.device.family == "Spider":
        return Agent("", "", "", True)
    browser = result.user_agent.family if result.user_agent else ""
    for suffix in _BROWSER_SUFFIXES:
        if browser.endswith(suffix):
            browser = browser[: -len(suffix)]
            break
    if browser.startswith("Mobile "):  # "Mobile Safari"
        browser = browser[len("Mobile ") :]
    os_name = result.os.family if result.os else ""
    os_name = _OS_NAMES.get(os_name, os_name)
    device_family = result.device.family if result.device else ""
    if device_family == "iPad" or "Tablet" in user_agent or (os_name == "Android" and "Mobile" not in user_agent):
        device = "Tablet"
    elif os_name in ("iOS", "Android") or "Mobile" in user_agent:
        device = "Mobile"
    else:
        device = "Desktop"
    # Some of ua-parser's rules copy a piece of the User-Agent into the family name: a crafted
    # header could make it longer than the browser and OS columns (60), which the worker refuses.
    browser, os_name = browser[:MAX_FAMILY], os_name[:MAX_FAMILY]
    return Agent(browser if browser != "Other" else "", os_name if os_name != "Other" else "", device, False)


def device_from_width(width: int | None, fallback: str) -> str:
    """Screen width classes as Plausible uses them; the UA class when the width is unknown."""
    if not width:
        return fallback
    if width < 576:
        return "Mobile"
    if width < 992:
        return "Tablet"
    if width < 1440:
        return "Laptop"
    return "Desktop"


@dataclass(frozen=True)
class Source:
    referrer: str  # host + path, no query string (search terms stay out)
    source: str


NO_SOURCE = Source("", "")


def parse_referrer(referrer: str | None, page_host: str) -> Source:
    if not referrer:
        return NO_SOURCE
    try:
        parts = urlsplit(referrer)
        host = (parts.hostname or "").lower()
    except ValueError:
        return NO_SOURCE
    if parts.scheme not in ("http", "https", "android-app") or not host:
        return NO_SOURCE
    host = _strip_www(host)
    if host == page_host or host.endswith("." + page_host) or page_host.endswith("." + host):
        return NO_SOURCE  # internal navigation is not a source
    path = parts.path if parts.path not in ("", "/") else ""
    short = (host + path)[:2000]
    name = EXTRA_SOURCES.get(host)
    if name is None:
        try:
            parsed = Referer(referrer)
        except Exception:  # the library raises on odd inputs; a source is never worth a 500
            parsed = None
        name = parsed.referer if parsed is not None and parsed.referer else host
    return Source(short, name[:100])
