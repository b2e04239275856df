"""Every word of the analysts' page, in English and French (the template and the script read them from here)."""

from __future__ import annotations

LANGUAGES = ("en", "fr")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "page_title": "newsclf: classify news articles",
        "heading": "Classify an article, see why, correct it",
        "intro": "Paste an article or drop a file. The labels come from the model below; the text is shown as "
                 "the model read it.",
        "switch_language": "Français",
        "model_heading": "The model",
        "model_loading": "Waiting for the model…",
        "model_name": "Name", "model_version": "Version", "model_run": "MLflow run", "model_trained": "Trained",
        "model_scores": "Scores at training (cv: cross-validation; seed: real seed articles)",
        "single_heading": "One article",
        "title_label": "Title (optional)",
        "text_label": "Article text",
        "text_hint": "As published; teasers and photo captions may stay, the model drops them.",
        "classify": "Classify",
        "classifying": "Classifying…",
        "sector": "Sector", "topics": "Topics", "region": "Region", "partners": "Partners",
        "language": "Language", "warnings": "Warnings", "confidence": "confidence",
        "no_topics": "No topic past its threshold.", "no_partners": "No partner country found.",
        "no_warnings": "None.",
        "evidence_heading": "Evidence in the text (as the model read it)",
        "legend_partner": "partner mentioned (country, capital or demonym)",
        "legend_country": "another country mentioned",
        "legend_evidence": "a topic's evidence sentence",
        "truncated": "The embedding stopped reading here (token limit); the word n-gram view reads the rest.",
        "correct_heading": "Correct the labels",
        "correct_hint": "Fix what is wrong and save: the correction is stored with the model version; it enters "
                        "training data only through `newsclf feedback export`.",
        "partners_label": "Partners (ISO codes, main partner first, separated by commas)",
        "note_label": "Note (optional)",
        "save": "Save the correction",
        "saved": "Saved: correction #{id} of {model} version {version}.",
        "file_heading": "A file of articles",
        "file_label": "JSON Lines or CSV file (columns id, text, optional title)",
        "file_hint": "Up to {max} articles per file. Drop the file here or choose it.",
        "file_progress": "Progress",
        "file_done": "{n} articles classified.",
        "filter_sector": "Show sector", "filter_topic": "Show topic", "all": "all",
        "download_csv": "Download CSV", "download_jsonl": "Download JSON Lines",
        "results_caption": "Results (select a column title to sort)",
        "col_id": "id", "col_confidence": "Sector confidence",
        "error_prefix": "The service refused the request:",
        "network_error": "The service did not answer ({reason}). Your text is still here: try again.",
        "file_error_json": "line {line}: not valid JSON ({reason})",
        "file_error_object": "line {line}: not a JSON object",
        "file_error_field": "line {line}: no \"{field}\" (each article needs an id and a text)",
        "file_error_columns": "the CSV header must name the columns id and text (title is optional); it has: {cols}",
        "file_error_quote": "line {line}: a quoted field is never closed",
        "file_error_empty": "the file holds no article",
        "file_error_too_many": "the file has {n} articles; the limit is {max} per file (NEWSCLF_MAX_BATCH_ITEMS): "
                               "split it",
        "file_error_type": "{name}: not a .jsonl, .json or .csv file",
        "file_error_rows": "Articles {first}–{last} of the file:",
        "file_error_line": "line {line}, id {id}",
        "legend_sample_partner": "Partner", "legend_sample_country": "Country",
        "api_key_summary": "API key",
        "api_key_label": "API key (only when the service asks for one; kept in this tab)",
    },
    "fr": {
        "page_title": "newsclf : classer des dépêches",
        "heading": "Classer un article, voir pourquoi, le corriger",
        "intro": "Collez un article ou déposez un fichier. Les étiquettes viennent du modèle ci-dessous ; le texte "
                 "est affiché tel que le modèle l'a lu.",
        "switch_language": "English",
        "model_heading": "Le modèle",
        "model_loading": "En attente du modèle…",
        "model_name": "Nom", "model_version": "Version", "model_run": "Exécution MLflow",
        "model_trained": "Entraîné le",
        "model_scores": "Scores à l'entraînement (cv : validation croisée ; seed : articles réels)",
        "single_heading": "Un article",
        "title_label": "Titre (facultatif)",
        "text_label": "Texte de l'article",
        "text_hint": "Tel que publié ; les liens « Voir plus » et les légendes de photos peuvent rester, le modèle "
                     "les retire.",
        "classify": "Classer",
        "classifying": "Classement en cours…",
        "sector": "Secteur", "topics": "Thèmes", "region": "Région", "partners": "Partenaires",
        "language": "Langue", "warnings": "Avertissements", "confidence": "confiance",
        "no_topics": "Aucun thème au-dessus de son seuil.", "no_partners": "Aucun pays partenaire trouvé.",
        "no_warnings": "Aucun.",
        "evidence_heading": "Les indices dans le texte (tel que le modèle l'a lu)",
        "legend_partner": "partenaire cité (pays, capitale ou gentilé)",
        "legend_country": "autre pays cité",
        "legend_evidence": "phrase qui justifie un thème",
        "truncated": "La lecture par plongement s'arrête ici (limite de jetons) ; la vue n-grammes lit la suite.",
        "correct_heading": "Corriger les étiquettes",
        "correct_hint": "Corrigez ce qui est faux puis enregistrez : la correction est conservée avec la version du "
                        "modèle ; elle n'entre dans les données d'entraînement que par `newsclf feedback export`.",
        "partners_label": "Partenaires (codes ISO, principal d'abord, séparés par des virgules)",
        "note_label": "Remarque (facultatif)",
        "save": "Enregistrer la correction",
        "saved": "Enregistré : correction n° {id} du modèle {model} version {version}.",
        "file_heading": "Un fichier d'articles",
        "file_label": "Fichier JSON Lines ou CSV (colonnes id, text, title facultatif)",
        "file_hint": "Jusqu'à {max} articles par fichier. Déposez le fichier ici ou choisissez-le.",
        "file_progress": "Progression",
        "file_done": "{n} articles classés.",
        "filter_sector": "Secteur affiché", "filter_topic": "Thème affiché", "all": "tous",
        "download_csv": "Télécharger en CSV", "download_jsonl": "Télécharger en JSON Lines",
        "results_caption": "Résultats (choisissez un titre de colonne pour trier)",
        "col_id": "id", "col_confidence": "Confiance (secteur)",
        "error_prefix": "Le service a refusé la requête :",
        "network_error": "Le service n'a pas répondu ({reason}). Votre texte est toujours là : réessayez.",
        "file_error_json": "ligne {line} : JSON invalide ({reason})",
        "file_error_object": "ligne {line} : pas un objet JSON",
        "file_error_field": "ligne {line} : pas de « {field} » (chaque article a besoin d'un id et d'un text)",
        "file_error_columns": "l'en-tête CSV doit nommer les colonnes id et text (title est facultatif) ; "
                              "il contient : {cols}",
        "file_error_quote": "ligne {line} : un champ entre guillemets n'est jamais fermé",
        "file_error_empty": "le fichier ne contient aucun article",
        "file_error_too_many": "le fichier contient {n} articles ; la limite est de {max} par fichier "
                               "(NEWSCLF_MAX_BATCH_ITEMS) : découpez-le",
        "file_error_type": "{name} : ni un fichier .jsonl, .json ni .csv",
        "file_error_rows": "Articles {first} à {last} du fichier :",
        "file_error_line": "ligne {line}, id {id}",
        "legend_sample_partner": "Partenaire", "legend_sample_country": "Pays",
        "api_key_summary": "Clé d'API",
        "api_key_label": "Clé d'API (seulement si le service en demande une ; gardée dans cet onglet)",
    },
}


def pick_language(requested: str | None, accept_language: str | None) -> str:
    """``?lang=`` first, then the browser's preference, then English."""
    if requested in LANGUAGES:
        return requested
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"
