"""`image-gen gallery`: the history as a page, checked in a real browser (Debian's Chromium driven by
Playwright) against the real server on 127.0.0.1, and as an exported folder opened from disk."""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from helpers import ROOT, cli
from image_gen_local.gallery.server import Gallery, Server
from image_gen_local.history import History
from image_gen_local.provenance import Made, label

CHROMIUM = "/usr/bin/chromium"
PICTURES = 150  # more than two pages of 60
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def browser_or_skip():
    """Chromium from Debian through Playwright; without them the browser tests are skipped, except in CI."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("pip install playwright")
        sync_playwright = None
    if not Path(CHROMIUM).exists():
        missing.append("apt-get install chromium")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the gallery's browser tests need: {', '.join(missing)} (.ci/run installs both)")
        pytest.skip(f"no browser for the gallery tests: {', '.join(missing)}")
    return sync_playwright


def made(prompt: str, size: tuple[int, int]) -> dict:
    fields = dict(requested={}, asked=None, received={}, model="gemini-3-pro-image", route="images")
    delivered = {"width": size[0], "height": size[1], "format": "PNG", "crop": None, "resize": None}
    recipe = Made(
        prompt,
        **fields,
        delivered=delivered,
        server="http://127.0.0.1:8045/v1",
        seconds=1.0,
        retries=0,
        warnings=[],
        inputs=[],
        synthetic=False,
        made="2026-11-25T10:00:00+00:00",
    )
    return recipe.as_recipe()


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    """A history of PICTURES real picture files with their recipes (the last: a hostile prompt, missing)."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    path = Path(os.environ["XDG_DATA_HOME"]) / "image-gen-local" / "history.sqlite3"
    with History(path) as store:
        for n in range(PICTURES):
            animal = ("fox", "whale", "owl")[n % 3]
            size = (160 + n % 5 * 40, 120)
            recipe = made(f"picture {n}: a {animal} in watercolor", size)
            out = io.BytesIO()
            Image.new("RGB", size, (n % 255, 90, 160)).save(out, "PNG")
            file = folder / f"{n:03d}-{animal}.png"
            file.write_bytes(label(out.getvalue(), recipe))
            store.add(file, recipe)
        gone = folder / "gone.png"
        store.add(gone, made(HOSTILE, (200, 100)))
    return folder


@pytest.fixture
def gallery(pictures: Path, tmp_path: Path) -> Iterator[Gallery]:
    import threading

    store = History(Path(os.environ["XDG_DATA_HOME"]) / "image-gen-local" / "history.sqlite3")
    served = Gallery(store, tmp_path / "thumbs")
    server = Server(served)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()
    store.close()


@pytest.fixture
def browser() -> Iterator:
    sync_playwright = browser_or_skip()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser, url: str, outside: list[str]):
    """A page that records (and blocks) every request that would leave 127.0.0.1 or the export folder."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    if url.startswith("http"):
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=_origin(url))

    def guard(route) -> None:
        if route.request.url.startswith(("http://127.0.0.1:", "file://")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page, errors


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def until(page, expression: str, timeout: float = 15.0) -> None:
    """Poll a JavaScript expression until it is true (page.wait_for_function would need eval, which the
    page's Content-Security-Policy forbids, as it should)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def card_ids(page) -> list[int]:
    return [int(x) for x in page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.id)")]


def test_the_page_shows_the_newest_pictures_first_and_pages_as_you_scroll(gallery, browser):
    outside: list[str] = []
    page, errors = open_page(browser, gallery.url(), outside)
    page.wait_for_selector(".card")
    first = card_ids(page)
    assert first[:3] == [PICTURES + 1, PICTURES, PICTURES - 1] and len(first) >= 60
    assert page.text_content("#count") == f"{PICTURES + 1} pictures"
    top = page.locator(".card").nth(1)
    assert f"picture {PICTURES - 1}:" in top.text_content() and "gemini-3-pro-image" in top.text_content()
    assert "2026" in top.text_content() or "-" in top.text_content()
    for _ in range(10):  # bounded: three pages at most
        if len(card_ids(page)) == PICTURES + 1:
            break
        page.mouse.wheel(0, 20_000)
        page.wait_for_timeout(300)
    ids = card_ids(page)
    assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids)) == PICTURES + 1
    assert page.locator("#more").is_hidden()
    until(page, "[...document.querySelectorAll('.card img')].slice(0, 5).every(i => i.naturalWidth > 0)")
    assert outside == [] and errors == []


def test_the_search_box_finds_prompts(gallery, browser):
    page, errors = open_page(browser, gallery.url(), [])
    page.wait_for_selector(".card")
    page.fill("#search", "whale")
    until(page, "[...document.querySelectorAll('.card .prompt')].every(p => p.textContent.includes('whale'))")
    until(page, "document.querySelectorAll('.card').length === 50")
    page.fill("#search", "zebra")
    until(page, "document.querySelectorAll('.card').length === 0")
    # the grid empties at once; the words come with the server's (empty) answer, a moment later
    until(page, "document.getElementById('status').textContent.includes('No prompt holds these words')")
    assert errors == []


def test_a_picture_opens_with_its_recipe_and_copy_buttons(gallery, browser, pictures):
    page, errors = open_page(browser, gallery.url(), [])
    page.wait_for_selector(".card")
    page.locator(".card").nth(1).click()
    page.wait_for_selector("#detail[open]")
    until(page, "document.getElementById('detail-img').naturalWidth > 0")
    expected = pictures / f"{PICTURES - 1:03d}-{('fox', 'whale', 'owl')[(PICTURES - 1) % 3]}.png"
    assert page.evaluate("document.getElementById('detail-img').naturalWidth") == Image.open(expected).width
    facts = page.text_content("#detail-lines")
    assert f"picture {PICTURES - 1}: a" in facts and "gemini-3-pro-image via images" in facts
    page.click("#copy-path")
    until(page, "document.getElementById('copied').textContent === 'Path copied.'")
    assert page.evaluate("navigator.clipboard.readText()") == str(expected)
    page.click("#copy-command")
    until(page, "document.getElementById('copied').textContent === 'Command copied.'")
    assert page.evaluate("navigator.clipboard.readText()") == f"image-gen again @id:{PICTURES}"
    page.click("#close")
    assert page.locator("#detail[open]").count() == 0 and errors == []


def test_details_that_arrive_late_never_replace_those_of_the_picture_opened_since(gallery, browser):
    page, errors = open_page(browser, gallery.url(), [])
    page.wait_for_selector(".card")
    first, second = card_ids(page)[1:3]
    held: list = []
    page.route(f"**/api/picture/{first}?*", lambda route: held.append(route))  # held back
    page.locator(".card").nth(1).click()
    page.wait_for_selector("#detail[open]")
    for _ in range(100):  # bounded: until the page has asked for the first picture's details
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    page.click("#close")
    page.locator(".card").nth(2).click()
    until(page, f"document.getElementById('detail-lines').textContent.includes('picture {second - 1}:')")
    held[0].continue_()  # the first picture's details arrive now, late
    page.wait_for_timeout(500)
    assert f"picture {second - 1}:" in page.text_content("#detail-lines")
    assert f"picture {first - 1}:" not in page.text_content("#detail-lines") and errors == []


def test_a_missing_picture_and_a_hostile_prompt_are_shown_safely(gallery, browser):
    page, errors = open_page(browser, gallery.url(), [])
    page.wait_for_selector(".card")
    card = page.locator(".card").first
    assert "missing" in card.text_content() and HOSTILE in card.text_content()  # shown as text
    card.click()
    page.wait_for_selector("#detail[open]")
    until(page, "!document.getElementById('detail-missing').hidden")
    assert page.title() == "image-gen gallery" and page.locator("img[src=x]").count() == 0 and errors == []


def request(gallery: Gallery, path: str, host: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", gallery.port, timeout=10)
    headers = {"Host": host} if host else {}
    connection.request(method, path, headers=headers)
    answer = connection.getresponse()
    body = answer.read()
    connection.close()
    return answer.status, body


def test_only_the_token_holder_at_127_0_0_1_is_answered(gallery):
    token = f"t={gallery.token}"
    assert request(gallery, f"/?{token}")[0] == 200
    for path in ("/", "/api/pictures", "/thumb/1", "/full/1", "/?t=wrong", f"/?t={gallery.token[:-1]}"):
        assert request(gallery, path)[0] == 403, path
    for host in ("evil.example", f"evil.example:{gallery.port}", "127.0.0.1", f"192.168.0.2:{gallery.port}"):
        assert request(gallery, f"/?{token}", host=host)[0] == 421, host
    assert request(gallery, f"/?{token}", host=f"localhost:{gallery.port}")[0] == 200
    assert request(gallery, f"/full/99999?{token}")[0] == 404
    assert request(gallery, f"/full/../../etc/passwd?{token}")[0] == 404
    assert request(gallery, f"/?{token}", method="POST")[0] == 501


def test_a_picture_is_served_as_what_its_bytes_are_never_as_its_name_says(gallery, pictures):
    out = io.BytesIO()
    Image.new("RGB", (40, 30)).save(out, "PNG")
    named_as_page = pictures / "page.html"  # `-o page.html` saves a PNG there (with a warning)
    named_as_page.write_bytes(label(out.getvalue(), made(f"<meta http-equiv=refresh>{HOSTILE}", (40, 30))))
    not_a_picture = pictures / "notes.png"
    not_a_picture.write_text("<script>alert(1)</script>")
    fifo = pictures / "fifo.png"  # opening it would wait for a writer for ever
    os.mkfifo(fifo)
    ids = [
        gallery.history.add(path, made(path.name, (40, 30))) for path in (named_as_page, not_a_picture, fifo)
    ]
    kinds = []
    for number in ids:
        connection = http.client.HTTPConnection("127.0.0.1", gallery.port, timeout=10)
        connection.request("GET", f"/full/{number}?t={gallery.token}")
        answer = connection.getresponse()
        answer.read()
        kinds.append((answer.status, answer.getheader("Content-Type")))
        connection.close()
    assert kinds == [(200, "image/png"), (200, "application/octet-stream"), (404, "text/plain")]
    assert request(gallery, f"/thumb/{ids[2]}?t={gallery.token}")[0] == 404


def test_a_damaged_history_is_one_line_and_exit_9_or_a_503_saying_why(tmp_path):
    import threading

    path = Path(os.environ["XDG_DATA_HOME"]) / "image-gen-local" / "history.sqlite3"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    run = cli("gallery")
    assert run.code == 9 and run.stdout == "" and "move the file away" in run.stderr
    assert len(run.stderr.splitlines()) == 1
    served = Gallery(History(path), tmp_path / "thumbs")  # damaged while it runs: the page says why
    server = Server(served)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, body = request(served, f"/api/pictures?t={served.token}")
        assert status == 503 and b"move the file away" in body
    finally:
        server.shutdown()
        server.server_close()
        served.history.close()


def test_the_server_listens_on_the_loopback_interface_only(gallery):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as finder:
        try:
            finder.connect(("10.255.255.255", 9))  # no packet is sent: this only picks the outward address
            address = finder.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    if address.startswith("127."):
        pytest.skip("this machine has no other address to try")
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex((address, gallery.port)) != 0


def test_the_command_prints_its_address_and_stops_on_ctrl_c(pictures, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen(
        [sys.executable, "scripts/gen.py", "gallery"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "/?t=" in url
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request("GET", f"/api/pictures?{parts.query}&limit=2")
        assert connection.getresponse().status == 200
        connection.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out == "" and "gallery stopped" in err and "Traceback" not in err


def test_a_port_in_use_is_a_usage_error(gallery):
    run = cli("gallery", "--port", str(gallery.port))
    assert run.code == 2 and "pick another --port" in run.stderr


def test_the_export_is_a_folder_that_works_from_disk(pictures, browser, tmp_path):
    target = tmp_path / "shared" / "gallery"
    run = cli("gallery", "--export", str(target), "fox")
    assert run.code == 0, run.stderr
    assert run.stdout.strip() == str(target / "index.html")
    assert len(list((target / "pictures").iterdir())) == PICTURES // 3
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no building folder left
    outside: list[str] = []
    page, errors = open_page(browser, (target / "index.html").as_uri(), outside)
    page.wait_for_selector(".card img")
    assert len(card_ids(page)) == 50 and all(
        "fox" in t for t in page.locator(".card .prompt").all_text_contents()
    )
    page.fill("#search", "picture 147")
    until(page, "document.querySelectorAll('.card').length === 1")
    page.locator(".card").first.click()
    until(page, "document.getElementById('detail-img').naturalWidth > 0")
    assert "picture 147: a fox" in page.text_content("#detail-lines") and outside == [] and errors == []


def test_an_export_never_writes_into_a_folder_with_files(pictures, tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "mine.txt").write_text("keep")
    run = cli("gallery", "--export", str(target))
    assert run.code == 2 and "not empty" in run.stderr
    assert [p.name for p in target.iterdir()] == ["mine.txt"]
    shutil.rmtree(target)
    assert cli("gallery", "--export", str(target), "--limit", "5").code == 0
    assert len(list((target / "thumbs").iterdir())) == 4  # the newest (missing) has no thumbnail


def test_exported_addresses_lead_to_the_pictures_whatever_their_names(pictures, tmp_path):
    from urllib.parse import unquote, urljoin

    odd = pictures / "a#b?c 50%.png"  # `-o` takes any name
    shutil.copyfile(pictures / "000-fox.png", odd)
    with History(Path(os.environ["XDG_DATA_HOME"]) / "image-gen-local" / "history.sqlite3") as store:
        store.add(odd, made("an oddly named fox", (160, 120)))
    target = tmp_path / "export"
    assert cli("gallery", "--export", str(target), "--limit", "3").code == 0
    data = (target / "data.js").read_text(encoding="utf-8")
    shown = json.loads(data.removeprefix("window.GALLERY_DATA = ").rstrip().removesuffix(";"))["pictures"]
    index = (target / "index.html").as_uri()
    for card in shown:
        for address in filter(None, (card["full"], card["thumb"])):
            parts = urlsplit(urljoin(index, address))
            assert not parts.fragment and not parts.query, address
            assert Path(unquote(parts.path)).is_file(), address
        assert not Path(card["path"]).is_absolute() and str(tmp_path) not in data  # no path of this machine
        if card["full"]:
            assert (target / card["path"]).is_file()
    assert shown[0]["full"].startswith(f"pictures/{shown[0]['id']}-a%23b%3Fc%2050%25")
    (tmp_path / "a-file").write_text("mine")
    run = cli("gallery", "--export", str(tmp_path / "a-file"))
    assert run.code == 2 and "is a file" in run.stderr and (tmp_path / "a-file").read_text() == "mine"
