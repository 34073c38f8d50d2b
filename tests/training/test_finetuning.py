"""Fine-tuning from a pretrained model_dir, trained on one language, evaluated zero-shot."""

import numpy as np
import pytest
from official.modeling import hyperparams

from tf_metaling import configs
from tf_metaling.data.synthetic import reverse_words, toy_sentences
from tf_metaling.training.experiment import run_pretraining
from tf_metaling.training.finetuning import run_finetuning


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    sentences = toy_sentences(600, seed=3)
    files = {
        "en": _write(root / "en.txt", sentences[:300]),
        "fr": _write(root / "fr.txt", [reverse_words(s) for s in sentences[300:]]),
    }
    overrides = {
        "data": {"corpus": "files", "languages": ["en", "fr"], "vocab_size": 120,
                 "train_files": ",".join(f"{k}={v}" for k, v in files.items()),
                 "valid_files": ",".join(f"{k}={v}" for k, v in files.items())},
        "trainer": {"train_steps": 5, "eval_interval": 5},
    }
    config = hyperparams.override_params_dict(configs.get_experiment("tiny"), overrides, is_strict=True)
    model_dir = str(root / "run")
    run_pretraining(config, model_dir, "train")
    return model_dir


def _nli_file(path, sentences, reverse=False):
    """Entailment when the hypothesis repeats the premise, contradiction otherwise."""
    rows = ["premise\thypo\tlabel"]
    for i, sentence in enumerate(sentences):
        other = sentences[(i + 1) % len(sentences)]
        hypothesis, label = (sentence, "entailment") if i % 2 == 0 else (other, "contradiction")
        if reverse:
            sentence, hypothesis = reverse_words(sentence), reverse_words(hypothesis)
        rows.append(f"{sentence}\t{hypothesis}\t{label}")
    return _write(path, rows)


def test_zero_shot_sentence_classification(pretrained, tmp_path):
    sentences = toy_sentences(200, seed=9)
    train = _nli_file(tmp_path / "train.en.tsv", sentences[:120])
    test_en = _nli_file(tmp_path / "test.en.tsv", sentences[120:160])
    test_fr = _nli_file(tmp_path / "test.fr.tsv", sentences[160:], reverse=True)
    overrides = {
        "task": "sentence_classification",
        "finetune": {"init_model_dir": pretrained, "dataset": "files", "train_language": "en",
                     "train_file": train, "eval_files": f"en={test_en},fr={test_fr}",
                     "label_names": ["entailment", "contradiction"]},
        "data": {"batch_size": 8, "eval_batch_size": 8},
        "trainer": {"train_steps": 30, "eval_interval": 30, "learning_rate": 1e-3},
    }
    config = hyperparams.override_params_dict(configs.get_experiment("tiny"), overrides, is_strict=True)
    before = run_finetuning(config, str(tmp_path / "cls"), "eval")
    after = run_finetuning(config, str(tmp_path / "cls"), "train_and_eval")
    for code in ("en", "fr"):  # fr was never trained on: zero-shot
        assert 0.0 <= after[f"accuracy/{code}"] <= 1.0 and np.isfinite(after[f"loss/{code}"])
    assert after["loss/en"] < before["loss/en"]


def test_finetuning_needs_a_pretrained_model_dir(tmp_path):
    config = hyperparams.override_params_dict(
        configs.get_experiment("tiny"), {"task": "sentence_classification"}, is_strict=True
    )
    with pytest.raises(ValueError, match="finetune.init_model_dir"):
        run_finetuning(config, str(tmp_path / "x"))


def test_a_class_balanced_loss_predicts_both_classes_of_a_90_10_toy_set():
    """Logistic regression by gradient descent on overlapping classes, 90% class 0: plain loss predicts 0 always."""
    import tensorflow as tf

    from tf_metaling.losses import mean_loss, sentence_classification_example_losses
    from tf_metaling.models.multilingual_model import SENTENCE_LOGITS
    from tf_metaling.training.finetuning import class_balanced_losses, class_weights

    rng = np.random.RandomState(0)
    labels = np.array([0] * 180 + [1] * 20)
    x = rng.normal(size=(200, 1)) + labels[:, None] * 1.0  # the classes overlap
    np.testing.assert_allclose(class_weights(labels, 2), [200 / (2 * 180), 200 / (2 * 20)])

    def plain(outputs, batch):
        return sentence_classification_example_losses(outputs[SENTENCE_LOGITS], batch)

    predicted = {}
    for name, losses in (("plain", plain), ("balanced", class_balanced_losses(plain, labels, 2))):
        kernel, bias = tf.Variable(tf.zeros([1, 2], tf.float64)), tf.Variable(tf.zeros([2], tf.float64))
        batch = {"labels": tf.constant(labels)}
        for _ in range(300):
            with tf.GradientTape() as tape:
                loss = mean_loss(*losses({SENTENCE_LOGITS: tf.constant(x) @ kernel + bias}, batch))
            for variable, gradient in zip((kernel, bias), tape.gradient(loss, [kernel, bias])):
                variable.assign_sub(0.5 * gradient)
        predicted[name] = np.argmax(x @ kernel.numpy() + bias.numpy(), axis=1)
    assert set(predicted["plain"]) == {0}
    assert set(predicted["balanced"]) == {0, 1}
    balanced_accuracy = np.mean([np.mean(predicted["balanced"][labels == c] == c) for c in (0, 1)])
    assert balanced_accuracy > 0.6  # the best possible at this overlap is about 0.69
