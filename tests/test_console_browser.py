"""The knowledge console driven as a maintainer uses it: a real headless Chromium (Playwright)
against the console served on 127.0.0.1 beside the bot's real engine.

Set CONSOLE_SCREENSHOTS=docs/screenshots to write the README's screenshots (inbox, entry
editor, dashboard); otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import CHROMIUM_ARGS, chromium_executable
from tests.test_console import (  # noqa: F401 - the fixtures too
    ASKED,
    ENTRY,
    USERS,
    ZHIKE,
    Site,
    dev_vectors,
    site_fixture,
)

SLOW = 120_000  # ms a publish may take (validation, build, the development set twice)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_executable()  # skips, saying what to install, without one
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                              headless=True)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_console(browser: Browser, site: Site, path: str = "/admin/inbox") -> Page:
    """Open a page of the console and log in through the login page it leads to.

    The page's console errors (a script or style the Content-Security-Policy blocked, a failed
    request) are kept in page.errors.
    """
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    page.goto(site.url + path)
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    page.fill("input[name=name]", "editor")
    page.fill("input[name=password]", USERS["editor"])
    page.click("form[action='/admin/login'] button[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(path)))
    return page


def seed_history(site: Site) -> None:
    """Two weeks of replies on two channels, some votes, and questions the bot could not
    answer: what a running bot leaves in its store."""
    now = time.time()
    for day in range(14):
        for channel, scale in (("telegram", 3), ("wecom", 2)):
            counts = {"answer": scale * (3 + (day * 7) % 5), "clarify": 1 + day % 3,
                      "fallback": (day * 5) % 4}
            for kind, n in counts.items():
                for i in range(n):
                    site.store.log_reply(now - day * 86400 - i * 60, channel, kind,
                                         "shop-commission" if kind == "answer" and i % 3 == 0
                                         else "zhike-what" if kind == "answer" else None, 0.6)
    for i, useful in enumerate([True, True, True, False, True, False]):
        site.store.record_feedback(now - i * 3600, "telegram", f"voter-{i}", "zhike-what",
                                   useful)
    for user, text in (("s1", ASKED), ("s2", "退休的老人做手工可以在小红书开店吗"), ("s3", ASKED),
                       ("s4", "店铺被扣分了怎么办"), ("s5", "店铺被扣分了怎么处理"),
                       ("s6", "小红书店铺可以卖虚拟商品吗")):
        site.ask(text, user=user, channel="wecom" if user in ("s2", "s5") else "telegram")


def test_a_maintainer_turns_an_unanswered_question_into_an_answer(
        site: Site, browser: Browser, shots: Path) -> None:
    seed_history(site)
    assert site.ask(ASKED, user="before").kind == "fallback"  # type: ignore[attr-defined]
    rel = site.console.entries()[ENTRY][0]
    page = open_console(browser, site)

    # The inbox groups the phrasings and ranks candidates from the live index.
    group = page.locator("li.group", has_text=ASKED)
    expect(group).to_contain_text("4 次")  # three phrasings asked four times, one group
    expect(group.locator("table.candidates")).to_contain_text(ENTRY)
    page.screenshot(path=str(shots / "inbox.png"))
    group.locator(f"button[data-attach='{ENTRY}']").click()
    expect(page.locator(".flash.ok", has_text=ENTRY)).to_contain_text("去发布")
    expect(page.locator("li.group", has_text=ASKED)).to_have_count(0)

    # The entry editor shows the new phrasing, the check and the previews.
    page.goto(f"{site.url}/admin/edit?path={urllib.parse.quote(rel)}")
    expect(page.locator("textarea[name=questions]")).to_have_value(re.compile(ASKED))
    expect(page.locator("#check .previews")).to_contain_text("Telegram")
    page.screenshot(path=str(shots / "editor.png"))

    # A broken edit: the loader's problem appears as it is typed, and saving is refused.
    before = site.console.draft.read(rel)
    page.fill("textarea[name=questions]", "只剩一个问法\n第二个问法")
    error = page.locator("#check li.error").first
    expect(error).to_contain_text(f"{rel}:")
    page.click("button[value=save]")
    expect(page.locator(".flash.bad").first).to_contain_text("没有保存")
    expect(page.locator(".check-panel li.error").first).to_contain_text(f"{rel}:")
    assert site.console.draft.read(rel) == before

    # Publish: checked, built, evaluated, swapped.
    page.goto(f"{site.url}/admin/publish")
    expect(page.locator(".plan")).to_contain_text(ENTRY)
    page.fill("input[name=note]", "个人开店卖手工")
    page.click("#publish")
    expect(page.locator("#outcome")).to_contain_text("已发布", timeout=SLOW)
    expect(page.locator("table.cards")).not_to_contain_text("✗")

    # The bot answers the once-unanswered question, and try-it shows why.
    reply = site.ask(ASKED, user="after")
    assert reply.kind == "answer" and reply.entry_id == ENTRY  # type: ignore[attr-defined]
    page.goto(f"{site.url}/admin/try?q={urllib.parse.quote(ASKED)}")
    expect(page.locator("#decision")).to_have_text("回答")
    expect(page.locator("#answered")).to_have_text(ENTRY)
    expect(page.locator("table.ranking tr.chosen")).to_contain_text(ENTRY)

    page.goto(f"{site.url}/admin/dashboard")
    expect(page.locator("svg.chart rect.k-answer").first).to_be_visible()
    expect(page.locator("#total")).not_to_have_text("0")
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
    # Nothing the pages use was blocked by their Content-Security-Policy (the refused save's
    # 422 is the only error the browser reports).
    errors = page.errors  # type: ignore[attr-defined]
    assert not [e for e in errors if "Content Security Policy" in e or "Refused to" in e]
    assert len(errors) == 1 and "422" in errors[0], errors
    page.close()


def test_a_publish_that_breaks_a_card_example_is_refused(site: Site, browser: Browser,
                                                         shots: Path) -> None:
    served = (site.service.knowledge_dir / ZHIKE).read_text(encoding="utf-8")
    page = open_console(browser, site, f"/admin/edit?path={urllib.parse.quote(ZHIKE)}")
    # Turn zhike-what into an entry about something else: valid, but 直客是什么 goes elsewhere.
    page.fill("input[name=title]", "聚光开户后多久能开始投放？")
    page.fill("textarea[name=questions]",
              "聚光开户要等几天\n开户审核要多久\n开户以后什么时候能投\n账户审核一般几天")
    page.fill("input[name=title_en]", "How long after opening a Juguang account can I advertise?")
    page.fill("textarea[name=questions_en]",
              "how long does juguang account review take\nwhen can I start ads")
    expect(page.locator("#check .ok-line")).to_be_visible()
    page.click("button[value=save]")
    expect(page.locator(".flash.ok")).to_contain_text("已保存到草稿")

    page.goto(f"{site.url}/admin/publish")
    page.click("#publish")
    expect(page.locator("#outcome")).to_contain_text("没有发布", timeout=SLOW)
    expect(page.locator(".reasons")).to_contain_text("直客是什么")
    expect(page.locator("table.cards tr.broken")).to_contain_text("zhike-what")
    expect(page.locator("table.cases tr.broken").first).to_be_visible()  # what it would break
    page.screenshot(path=str(shots / "publish-refused.png"), full_page=True)
    page.close()

    # The old knowledge keeps serving, from the same files.
    reply = site.ask("直客是什么", user="after-refusal")
    assert reply.kind == "answer" and reply.entry_id == "zhike-what"  # type: ignore[attr-defined]
    assert (site.service.knowledge_dir / ZHIKE).read_text(encoding="utf-8") == served
    assert site.console.publisher.versions()[0].n == 1
