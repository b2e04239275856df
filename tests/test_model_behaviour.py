"""Model tests: behaviour of the trained model (minimum functionality, invariance, direction).

Texts here are written for the tests and appear nowhere in the corpus.
"""

from __future__ import annotations

import pytest

from newsclf.predictor import ArticleInput, Predictor

pytestmark = pytest.mark.slow

DRUGS_FR = ArticleInput(
    title="Le Vietnam et le Laos intensifient la lutte contre le trafic de stupéfiants",
    text=(
        "Vientiane (VNA) – Le vice-ministre vietnamien de la Sécurité publique et son homologue laotien ont "
        "co-présidé mardi à Vientiane une réunion consacrée à la lutte contre le trafic de stupéfiants le long "
        "de la frontière commune. Les deux parties ont fait le point sur les saisies d'héroïne et de "
        "méthamphétamine réalisées cette année dans les provinces de Dien Bien, Son La et Nghe An, où des "
        "réseaux transnationaux acheminent la drogue depuis le Triangle d'or.\n"
        "Elles sont convenues de renforcer l'échange d'informations entre les unités antidrogue, de mener des "
        "opérations conjointes et d'organiser des patrouilles coordonnées dans les zones frontalières. La partie "
        "vietnamienne formera cette année une centaine d'officiers laotiens aux techniques d'enquête. – VNA"
    ),
)
TEASERS = (
    "\n\nVoir plus\n\nLe Premier ministre inaugure un parc technologique à Da Nang. Photo : VNA\n\n"
    "Le Vietnam et le Japon signent un accord sur les semi-conducteurs\n\n"
    "Le Vietnam et le Japon ont signé un accord de coopération dans la recherche sur les semi-conducteurs et "
    "l'intelligence artificielle, avec un programme de bourses pour les ingénieurs.\n\n"
    "Le ministre de la Défense reçoit l'ambassadeur de France. Photo : VNA\n\n"
    "Vietnam – France : renforcement de la coopération militaire\n\n"
    "Les deux pays ont convenu d'élargir les échanges entre leurs académies militaires."
)
CAPTION = "{title} ảnh 1Le vice-ministre vietnamien (droite) et son homologue laotien. Photo : VNA\n"


@pytest.fixture(scope="module")
def base(predictor: Predictor):
    return predictor.predict([DRUGS_FR])[0]


def test_obvious_french_drug_cooperation_is_security_and_drugs(base):
    assert base.sector.label == "security"
    assert "drugs" in {t for t, _ in base.topics}
    assert base.region.label == "southeast_asia"
    assert base.partners[:1] == ["LA"]


def test_the_same_story_in_english_and_vietnamese(predictor: Predictor):
    english = ArticleInput(
        title="Vietnam and Laos step up the fight against drug trafficking",
        text=("Vientiane (VNA) – Vietnam's deputy minister of public security and his Lao counterpart agreed on "
              "Tuesday to share intelligence between their anti-narcotics units, run joint operations against "
              "heroin and methamphetamine smuggling rings and coordinate patrols along the shared border. "
              "Vietnam will train about one hundred Lao officers in investigation techniques this year. – VNA"),
    )
    vietnamese = ArticleInput(
        title="Việt Nam và Lào tăng cường phòng chống ma túy",
        text=("Viêng Chăn (TTXVN) – Thứ trưởng Bộ Công an Việt Nam và người đồng cấp Lào nhất trí tăng cường "
              "trao đổi thông tin giữa các đơn vị phòng chống ma túy, phối hợp triệt phá các đường dây buôn bán "
              "heroin và ma túy tổng hợp qua biên giới, đồng thời tổ chức tuần tra chung. Phía Việt Nam sẽ đào "
              "tạo khoảng một trăm cán bộ công an Lào về nghiệp vụ điều tra. – TTXVN"),
    )
    for prediction in predictor.predict([english, vietnamese]):
        assert prediction.sector.label == "security"
        assert "drugs" in {t for t, _ in prediction.topics}
        assert prediction.partners[:1] == ["LA"]
    assert [p.language for p in predictor.predict([english, vietnamese])] == ["en", "vi"]


def test_teasers_and_captions_do_not_change_the_labels(predictor: Predictor, base):
    noisy = ArticleInput(
        title=DRUGS_FR.title,
        text=CAPTION.format(title=DRUGS_FR.title) + DRUGS_FR.title + "\n" + DRUGS_FR.text + TEASERS,
    )
    prediction = predictor.predict([noisy])[0]
    assert prediction.sector.label == base.sector.label
    assert prediction.region.label == base.region.label
    assert {t for t, _ in prediction.topics} == {t for t, _ in base.topics}
    assert prediction.partners == base.partners


def test_changing_the_partner_moves_the_region_not_the_sector(predictor: Predictor, base):
    swapped = ArticleInput(
        title=DRUGS_FR.title.replace("le Laos", "le Japon"),
        text=DRUGS_FR.text.replace("Vientiane", "Tokyo").replace("laotien", "japonais")
        .replace("laotiens", "japonais").replace("la frontière commune", "les ports")
        .replace("le long de la frontière commune", "dans les ports"),
    )
    prediction = predictor.predict([swapped])[0]
    assert prediction.sector.label == base.sector.label == "security"
    assert prediction.region.label == "east_asia"
    assert prediction.partners[:1] == ["JP"]


def test_domestic_crime_news_is_sector_none(predictor: Predictor):
    domestic = ArticleInput(
        title="Son La : démantèlement d'un réseau de trafic de drogue",
        text=("Son La (VNA) – La police de la province de Son La a démantelé un réseau de trafic de drogue et "
              "arrêté sept suspects en possession de 12 kg de méthamphétamine et de 3 000 comprimés de drogue "
              "de synthèse. L'enquête, menée pendant quatre mois par le service de police antidrogue, a permis "
              "de saisir deux voitures et des armes. Les suspects seront jugés par le tribunal populaire "
              "provincial. La police appelle la population à signaler tout trafic. – VNA"),
    )
    prediction = predictor.predict([domestic])[0]
    assert prediction.sector.label == "none"
    assert prediction.region.label == "none"
    assert prediction.topics == [] and prediction.partners == []


def test_a_regional_police_chiefs_meeting_is_multilateral(predictor: Predictor):
    meeting = ArticleInput(
        title="Les chefs de police de l'ASEAN renforcent la lutte commune contre la criminalité transnationale",
        text=(
            "Bangkok, 12 novembre (VNA) – La conférence annuelle des chefs de police de l'ASEAN (ASEANAPOL) s'est "
            "tenue du 10 au 12 novembre à Bangkok, en présence des délégations de la Thaïlande, du Cambodge, du "
            "Laos, de la Malaisie, de l'Indonésie, des Philippines, de Singapour, du Brunei, du Myanmar et du "
            "Vietnam, ainsi que d'observateurs d'Interpol.\n\n"
            "Les polices membres ont adopté un communiqué conjoint dans lequel elles s'engagent à intensifier "
            "l'échange d'informations sur les réseaux de trafic de drogue et de traite des êtres humains, et à "
            "mettre à jour plus souvent la base de données électronique commune de l'ASEANAPOL.\n\n"
            "La délégation vietnamienne, conduite par un vice-ministre de la Sécurité publique, a proposé la "
            "création d'un groupe de travail sur les escroqueries en ligne organisées depuis l'étranger. – VNA"
        ),
    )
    prediction = predictor.predict([meeting])[0]
    assert prediction.sector.label == "security"
    assert prediction.region.label == "multilateral", prediction.region


def test_a_threat_named_in_passing_is_not_a_topic_but_the_cooperation_is(predictor: Predictor):
    speech = ArticleInput(
        title="Vietnam and Cambodia step up joint work against drug trafficking on their border",
        text=(
            "Phnom Penh, March 3 (VNA) - Vietnam's Ministry of Public Security and Cambodia's Ministry of Interior "
            "held talks in Phnom Penh on Tuesday on fighting drug trafficking along their shared border.\n\n"
            "Opening the session, the Cambodian minister noted that the region as a whole still faces many "
            "non-traditional security challenges, from climate change to epidemics.\n\n"
            "The two sides agreed to set up joint checkpoints at three border gates, to carry out coordinated "
            "operations against drug rings moving methamphetamine and heroin across the border, and to hand over "
            "the suspects they arrest. - VNA"
        ),
    )
    prediction = predictor.predict([speech])[0]
    topics = {t for t, _ in prediction.topics}
    assert prediction.sector.label == "security"
    assert "drugs" in topics
    assert "terrorism" not in topics and "cybercrime" not in topics
    evidence = prediction.topic_evidence["drugs"][0]
    assert "drug" in speech.text[evidence.start:evidence.end]
