import pytest
from genhub_orchestrator.domain.sizing import ImageSize, InvalidSize, image_size, parse_aspect_ratio


def test_default_is_1024_square() -> None:
    assert image_size() == ImageSize(1024, 1024)


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        ("16:9", ImageSize(1024, 576)),
        ("9:16", ImageSize(576, 1024)),
        ("4:3", ImageSize(1024, 768)),
        ("3:2", ImageSize(1024, 680)),  # 682.67 snapped to the 8-pixel grid
        ("21:9", ImageSize(1024, 440)),
    ],
)
def test_aspect_ratio_sets_short_side(ratio: str, expected: ImageSize) -> None:
    assert image_size(ratio) == expected


def test_explicit_width_and_height_win_over_ratio() -> None:
    assert image_size("16:9", 512, 512) == ImageSize(512, 512)


def test_one_side_follows_the_ratio() -> None:
    assert image_size("16:9", width=1280) == ImageSize(1280, 720)
    assert image_size("16:9", height=720) == ImageSize(1280, 720)


def test_sizes_are_snapped_and_clamped() -> None:
    assert image_size("1:1", 1001, 1003) == ImageSize(1000, 1000)
    assert image_size("1:1", width=4096 + 500) == ImageSize(4096, 4096)
    assert image_size("1:10", width=64).height == 640
    assert image_size("10:1", width=64) == ImageSize(64, 64)  # short side never below 64


@pytest.mark.parametrize("bad", ["0:1", "1:0", "16x9", "", "a:b", "1:99"])
def test_bad_aspect_ratios_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidSize):
        parse_aspect_ratio(bad)


def test_parse_aspect_ratio() -> None:
    assert parse_aspect_ratio("16:9") == (16, 9)
