"""``a2i world``: write the embedded synthetic world as wav + png + manifest.jsonl."""

from __future__ import annotations

import argparse

HELP = "materialise the embedded synthetic audio-visual world to disk"


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``a2i world``."""
    parser = argparse.ArgumentParser(prog="a2i world", description=HELP, allow_abbrev=False)
    parser.add_argument("--out", required=True, help="destination folder (must be empty or new)")
    parser.add_argument("--train", type=int, default=1000, help="training clips")
    parser.add_argument("--val", type=int, default=100, help="validation clips")
    parser.add_argument("--test", type=int, default=200, help="test clips")
    parser.add_argument(
        "--image_size", type=int, default=64, help="image side in pixels (64 or 32)"
    )
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--mp4", action="store_true", help="also export each clip as an mp4 video")
    parser.add_argument(
        "--audio_only", action="store_true", help="write wavs only (prediction inputs)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="allow writing into a non-empty folder"
    )
    return parser


def main(argv: list[str]) -> None:
    """Run ``a2i world`` with command-line arguments ``argv`` (without the command's name)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from a2i.synth.materialize import materialize_world  # after parsing: --help stays instant
    from a2i.synth.world import SyntheticWorld

    sizes = {"train": args.train, "val": args.val, "test": args.test}
    try:
        materialize_world(
            args.out,
            sizes={k: v for k, v in sizes.items() if v > 0},
            world=SyntheticWorld(image_size=args.image_size, seed=args.seed),
            overwrite=args.overwrite,
            mp4=args.mp4,
            audio_only=args.audio_only,
        )
    except FileExistsError as error:
        parser.error(str(error))
    print(f"a2i world: wrote {sum(sizes.values())} clips to {args.out}")
