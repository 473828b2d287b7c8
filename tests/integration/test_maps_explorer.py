"""The explorer page in a real headless browser (Debian's chromium through selenium)."""

from __future__ import annotations

import shutil

import pytest

from crystalspace.maps.build import build_maps
from crystalspace.maps.explorer import write_explorer
from crystalspace.space.build import build_lake
from crystalspace.space.config import make_space_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def page(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("explorer")
    config = make_space_config(
        overrides={"arities": "2,3", "elements": "Li,Na,Mg,Zn,Cu,Fe,Al,Sn,N,P,O,S,Cl,F"}
    )
    assert build_lake(config, str(root / "lake")).complete
    build_maps(
        [str(root / "lake")],
        root / "maps",
        arities=(2, 3),
        embeddings=("mat2vec", "magpie"),
        methods=("pca",),
        per_category=200,
    )
    return write_explorer(root / "maps")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip(
            "no chromium + chromedriver (apt-get install chromium chromium-driver; tools/check.sh does)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        "--enable-unsafe-swiftshader",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


def _shown(driver) -> int:
    return int(driver.execute_script("return window.explorer.shown()"))


def _formulas(driver) -> list[str]:
    return driver.execute_script(
        "return document.getElementById('plot').data.flatMap(t => t.text.map(s => s.split('<br>')[0]))"
    )


def _select(driver, name: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", name)).select_by_value(value)


def test_selectors_filters_and_toggles_change_the_points(page, browser, tmp_path):
    browser.get(page.resolve().as_uri())
    arity2 = _shown(browser)
    assert arity2 > 100
    assert browser.find_element("id", "count").text == f"{arity2} points shown"

    _select(browser, "embedding", "magpie")  # magpie drops nothing here: same compositions, new map
    assert "magpie/pca" in browser.execute_script("return document.getElementById('plot').layout.title.text")

    _select(browser, "arity", "3")
    arity3 = _shown(browser)
    assert arity3 != arity2

    box = browser.find_element("id", "elements")
    box.send_keys("O, Li")
    with_o_li = _shown(browser)
    assert 0 < with_o_li < arity3
    formulas = _formulas(browser)
    assert len(formulas) == with_o_li
    assert all("O" in f and "Li" in f for f in formulas)

    browser.find_element("id", "show-unlikely").click()  # hide a category
    assert _shown(browser) < with_o_li
    browser.save_screenshot(str(tmp_path / "explorer.png"))
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
