"""``a2i serve`` in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``)
driven by selenium loads the page, uploads world sounds and bad files, and reads what it shows.

The page tests serve 2-step tiny runs and an export (random-looking images, fast). Whether the
images show the sound's class needs a trained model: that test serves what a fresh clone offers,
the tiny GAN whose weights ship with a2i (the same every time and everywhere, unlike a local
``make demo`` run).
"""

from __future__ import annotations

import io
import re
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from a2i.audio.io import read_audio_window
from a2i.commands.serve import serving
from a2i.data.manifest import read_manifest
from a2i.errors import AudioDecodeError
from a2i.pipelines import AudioToImagePipeline
from a2i.serve.models import entry_for, shipped_entry
from a2i.synth.judge import WorldJudge
from a2i.synth.materialize import materialize_world
from a2i.synth.world import SyntheticWorld

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--window-size=1366,768",  # a laptop's screen: the page is laid out for it
    "--use-fake-device-for-media-stream",  # a microphone that beeps
    "--use-fake-ui-for-media-stream",  # allowed without asking
)
WAIT_S = 180  # two shared cores: a first page load can take a while

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="no Chromium: install the Debian packages chromium and chromium-driver "
        "(apt-get install -y chromium chromium-driver) to run the browser tests",
    ),
    pytest.mark.xdist_group("serve_browser"),  # one server and one browser for the module
]

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def world_clips(root: Path, clip_seconds: float) -> dict[Path, int]:
    """Three world test clips, written by the same code as ``a2i world``, and their labels."""
    materialize_world(
        root,
        sizes={"test": 3},
        world=SyntheticWorld(image_size=32, clip_seconds=clip_seconds),
        audio_only=True,
    )
    return {root / r.audio: r.label for r in read_manifest(root)}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three 1 s world test clips and their labels."""
    return world_clips(tmp_path_factory.mktemp("world"), clip_seconds=1.0)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """A text file, an empty wav, a wav holding NaN, and a two-hour recording (4 kHz, 58 MB)."""
    folder = tmp_path_factory.mktemp("bad")
    (folder / "notes.txt").write_text("a shopping list, not a sound\n")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "my_[take](y)_#1.wav").write_bytes(b"")  # a name that is Markdown
    samples = np.full(16000, 0.1, dtype=np.float32)
    samples[4000:4010] = np.nan
    sf.write(folder / "nan.wav", samples, 16000, subtype="FLOAT")
    noise = (0.1 * np.random.default_rng(0).standard_normal(4000 * 600)).astype(np.float32)
    with sf.SoundFile(folder / "two_hours.wav", "w", 4000, 1, subtype="PCM_16") as handle:
        for _ in range(12):  # 12 x 10 minutes
            handle.write(noise)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, fit_run):
    """2-step tiny Sound2Vision runs (the real ``a2i fit``): GAN, its export, and LDM."""
    out = tmp_path_factory.mktemp("serve_models")
    gan = fit_run("sound2vision_gan.yaml", out / "gan")
    export = AudioToImagePipeline.from_run(gan).save_pretrained(out / "export")
    return gan, export, fit_run("sound2vision_ldm.yaml", out / "ldm")


def serve(*runs: Path, empty: Path):
    return serving(
        [*(f"--run={r}" for r in runs), "--models_dir", str(empty), "--port", str(free_port())]
    )


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    with serve(*models, empty=tmp_path_factory.mktemp("no_models")) as app:
        yield app


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in CHROMIUM_ARGUMENTS:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait(driver, condition, timeout: float = WAIT_S):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def open_page(driver, app) -> None:
    driver.get(app.local_url)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))


def upload(driver, path: Path, box: str = "upload") -> None:
    """Clear the file box if it holds a file, then give it ``path``."""
    for button in driver.find_elements(By.CSS_SELECTOR, f"#{box} button[aria-label=Clear]"):
        button.click()
    selector = f"#{box} input[type=file]"
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, selector))
    driver.find_element(By.CSS_SELECTOR, selector).send_keys(str(path))


FINAL_STATUS = re.compile(r"^(⚠️ |\d+ images? \(|\d+ models? drew)")
"""How the status line of a finished request starts (while running it shows gradio's timer)."""


def finished_status(driver, element: str = "status") -> str:
    """The status line, once a request has finished (the page was fresh before it)."""
    wait(driver, lambda d: FINAL_STATUS.match(d.find_element(By.ID, element).text.strip()))
    return driver.find_element(By.ID, element).text.strip()


def gallery_images_shown(driver, gallery: str = "gallery") -> list:
    return driver.find_elements(By.CSS_SELECTOR, f"#{gallery} button img")


def gallery_images(driver, gallery: str = "gallery") -> list[Image.Image]:
    images = []
    for element in gallery_images_shown(driver, gallery):
        with urllib.request.urlopen(element.get_attribute("src")) as response:
            images.append(Image.open(io.BytesIO(response.read())).convert("RGB"))
    return images


def draw_and_read(driver, app, sound: Path) -> tuple[str, list[Image.Image]]:
    """Upload ``sound`` on a fresh page; the status line and the images it drew."""
    open_page(driver, app)
    upload(driver, sound)
    return finished_status(driver), gallery_images(driver)


def test_an_uploaded_world_sound_gives_one_image_per_seed_and_a_spectrogram(server, browser, world):
    line, images = draw_and_read(browser, server, next(iter(world)))
    assert line.startswith("4 images (seeds 0–3)"), line
    assert "the model heard 1 s: the whole sound" in line
    assert len(images) == 4
    assert all(image.size == (256, 256) for image in images)
    assert len({image.tobytes() for image in images}) == 4  # one image per seed
    spectrogram = browser.find_element(By.CSS_SELECTOR, "#spectrogram img")
    assert spectrogram.get_attribute("src")


@pytest.mark.parametrize("name", ["notes.txt", "empty.wav", "nan.wav", "my_[take](y)_#1.wav"])
def test_a_bad_upload_shows_the_one_line_error_of_a2i_predict(server, browser, bad_files, name):
    path = bad_files / name
    with pytest.raises(AudioDecodeError) as raised:  # what `a2i predict` reports for the file
        read_audio_window(path, 16000, 1.0)
    expected = str(raised.value).replace(str(path), name)
    line, images = draw_and_read(browser, server, path)
    assert line == f"⚠️ {expected}"
    assert images == []
    assert "Traceback" not in browser.page_source


def test_a_two_hour_recording_is_cropped_to_what_the_model_hears(server, browser, bad_files):
    line, images = draw_and_read(browser, server, bad_files / "two_hours.wav")
    assert "the model heard 1 s: from 0.0 s of a 2:00:00 sound" in line
    assert len(images) == 4


def buttons_named(driver, box: str, text: str) -> list:
    return [b for b in driver.find_elements(By.CSS_SELECTOR, f"#{box} button") if b.text == text]


def test_a_recording_from_the_microphone_is_drawn(server, browser):
    open_page(browser, server)
    wait(browser, lambda d: buttons_named(d, "record", "Record"))[0].click()
    stop = wait(browser, lambda d: buttons_named(d, "record", "Stop"))
    time.sleep(1.5)  # a second and a half of the fake microphone's beeps
    stop[0].click()
    line = finished_status(browser)
    assert line.startswith("4 images (seeds 0–3)"), line
    assert len(gallery_images(browser)) == 4


def shown(driver, element: str) -> bool:
    return any(e.is_displayed() for e in driver.find_elements(By.ID, element))


def test_the_widgets_follow_the_controls_of_the_chosen_model(server, browser, world, models):
    open_page(browser, server)
    assert [shown(browser, c) for c in ("gain", "mix", "image_blend")] == [True] * 3
    assert not any(shown(browser, c) for c in ("prompt", "guidance_scale", "num_inference_steps"))
    browser.find_element(By.CSS_SELECTOR, "#model input").click()
    ldm = entry_for(models[2]).title  # the dropdown lists names, not paths
    assert ldm.startswith("Sound2Vision LDM · run ")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"[role=option][aria-label='{ldm}']"))
    browser.find_element(By.CSS_SELECTOR, f"[role=option][aria-label='{ldm}']").click()
    wait(browser, lambda d: shown(d, "num_inference_steps") and shown(d, "guidance_scale"))
    assert not shown(browser, "prompt")
    steps = browser.find_element(By.CSS_SELECTOR, "#num_inference_steps input")
    steps.clear()
    steps.send_keys("3")
    upload(browser, next(iter(world)))
    assert finished_status(browser).startswith("4 images (seeds 0–3)")
    assert len(gallery_images(browser)) == 4


def in_view(driver, element) -> bool:
    """Whether all of ``element`` is inside the browser's viewport."""
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return r.height > 0 && r.top >= 0 && r.left >= 0"
        " && r.bottom <= innerHeight && r.right <= innerWidth",
        element,
    )


def test_at_1366x768_draw_is_reached_without_scrolling_after_changing_seed_and_gain(
    server, browser, world
):
    open_page(browser, server)
    assert browser.execute_script("return [outerWidth, outerHeight]") == [1366, 768]
    for element in ("model", "upload", "seed", "gain", "draw-button"):
        assert in_view(browser, browser.find_element(By.ID, element)), element
    upload(browser, next(iter(world)))
    assert finished_status(browser).startswith("4 images (seeds 0–3)")
    seed = browser.find_element(By.CSS_SELECTOR, "#seed input")
    seed.clear()
    seed.send_keys("7")
    gain = browser.find_element(By.CSS_SELECTOR, "#gain input[type=number]")
    gain.clear()
    gain.send_keys("6")
    draw = browser.find_element(By.ID, "draw-button")
    assert browser.execute_script("return scrollY") == 0 and in_view(browser, draw)
    draw.click()
    wait(browser, lambda d: "seeds 7–10" in d.find_element(By.ID, "status").text)
    assert browser.execute_script("return scrollY") == 0
    assert all(in_view(browser, image) for image in gallery_images_shown(browser))


def test_compare_methods_draws_the_sound_with_every_chosen_model(server, browser, world):
    open_page(browser, server)
    browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Compare methods')]").click()
    upload(browser, next(iter(world)), box="compare_upload")
    line = finished_status(browser, "compare_status")
    assert line == "3 models drew seeds 0–1.", line
    rows = gallery_images(browser, "compare_gallery")
    assert len(rows) == 3
    assert rows[0].tobytes() == rows[1].tobytes()  # a run and its export draw the same images


def test_at_1366x768_both_rows_of_a_two_model_comparison_are_in_view(server, browser, world):
    open_page(browser, server)
    browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Compare methods')]").click()
    export = browser.find_elements(By.CSS_SELECTOR, "#compare_models label")[1]
    assert export.text.startswith("Sound2Vision GAN · export export, ")
    export.click()  # the GAN run and the LDM run, as the newest `make demo` offers
    upload(browser, next(iter(world)), box="compare_upload")
    assert finished_status(browser, "compare_status") == "2 models drew seeds 0–1."
    rows = gallery_images_shown(browser, "compare_gallery")
    assert len(rows) == 2
    assert all(in_view(browser, row) for row in rows)
    captions = browser.find_element(By.ID, "compare_gallery").text
    assert "Sound2Vision GAN · run " in captions and "Sound2Vision LDM · run " in captions


def test_images_served_before_make_demo_show_the_sounds_class(
    browser, tmp_path_factory, monkeypatch
):
    clips = world_clips(tmp_path_factory.mktemp("world_4s"), clip_seconds=4.0)
    monkeypatch.chdir(tmp_path_factory.mktemp("fresh_clone"))  # no runs/demo: the shipped GAN
    judge, labels, judged = WorldJudge.load(), [], []
    with serve(empty=tmp_path_factory.mktemp("none")) as app:
        for audio, label in clips.items():
            _, images = draw_and_read(browser, app, audio)
            assert len(images) == 4
            model = browser.find_element(By.CSS_SELECTOR, "#model input")
            assert model.get_attribute("value") == shipped_entry().title
            # Shown at 256 px, nearest neighbour: box-downsampling gives the 32 px images back.
            small = np.stack([np.asarray(i.resize((32, 32), Image.Resampling.BOX)) for i in images])
            batch = torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255
            judged += judge.judge(batch).main_class.tolist()
            labels += [label] * len(images)
    right = sum(a == b for a, b in zip(judged, labels, strict=True))
    assert right >= 2 / 3 * len(labels), (labels, judged)  # chance: 1/10
