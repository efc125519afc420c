"""Latency of ``a2i serve`` from upload to first image, measured in a real (headless) browser.

Serves the given runs (default: the newest ``make demo`` runs) on a free port, opens the page in
Debian's Chromium through selenium, uploads one world test clip as a warm-up, then ``--repeats``
more, each on a fresh page, timing from handing the file to the upload box until the first
generated image is on the page. The model's own share (read + draw, reported on the page) is
printed beside it. ``--screenshot`` saves the page after the last upload (docs/serve.png)::

    python benchmarks/serve_latency.py --repeats 10 --screenshot docs/serve.png --overwrite
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from a2i.commands.serve import serving
from a2i.data.manifest import read_manifest
from a2i.io_utils import atomic_write
from a2i.synth.materialize import materialize_world
from a2i.synth.world import SyntheticWorld

MODEL_MS = re.compile(r"in (\d+) ms")
FIRST_IMAGE_SHOWN = """
const image = document.querySelector('#gallery button img');
return image !== null && image.complete && image.naturalWidth > 0;
"""
SPECTROGRAM_SHOWN = FIRST_IMAGE_SHOWN.replace("#gallery button img", "#spectrogram img")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def browser(chromium: str, driver: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1366,768",  # the screen the page is laid out for
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def upload_to_first_image(page: webdriver.Chrome, url: str, sound: Path) -> tuple[float, int]:
    """Seconds from upload to the first image on a fresh page, and the model's milliseconds."""
    page.get(url)
    wait = WebDriverWait(page, 300, poll_frequency=0.005)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
    began = time.perf_counter()
    page.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(sound))
    wait.until(lambda d: d.execute_script(FIRST_IMAGE_SHOWN))
    seconds = time.perf_counter() - began
    found = MODEL_MS.search(page.find_element(By.ID, "status").text)
    return seconds, int(found.group(1)) if found else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], help="as `a2i serve --run`")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--clip_seconds", type=float, default=4.0, help="world clip length")
    parser.add_argument("--screenshot", type=Path, help="save the page here after the last run")
    parser.add_argument("--overwrite", action="store_true", help="replace --screenshot")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        materialize_world(
            folder,
            sizes={"test": args.repeats + 1},
            world=SyntheticWorld(image_size=32, clip_seconds=args.clip_seconds),
            audio_only=True,
        )
        sounds = [Path(folder) / record.audio for record in read_manifest(folder)]
        arguments = [*(f"--run={run}" for run in args.run), "--port", str(free_port())]
        with serving([*arguments, "--models_dir", str(Path(folder) / "none")]) as app:
            page = browser(args.chromium, args.chromedriver)
            try:
                upload_to_first_image(page, app.local_url, sounds[0])  # warm-up
                timings = [upload_to_first_image(page, app.local_url, s) for s in sounds[1:]]
                if args.screenshot is not None:
                    WebDriverWait(page, 60).until(lambda d: d.execute_script(SPECTROGRAM_SHOWN))
                    time.sleep(1)  # the other images of the gallery
                    with atomic_write(args.screenshot, overwrite=args.overwrite) as tmp:
                        tmp.write_bytes(page.get_screenshot_as_png())
            finally:
                page.quit()
    page_s = [seconds for seconds, _ in timings]
    model_ms = [ms for _, ms in timings]
    print(
        f"upload → first image over {len(timings)} uploads (after one warm-up): median "
        f"{statistics.median(page_s):.2f} s, min {min(page_s):.2f} s, max {max(page_s):.2f} s; "
        f"of which reading + drawing {statistics.median(model_ms)} ms (median)"
    )


if __name__ == "__main__":
    main()
