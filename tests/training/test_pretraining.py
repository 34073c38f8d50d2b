"""Pretraining runs end to end on the tiny preset: variants, model_dir, safety, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import yaml
from official.modeling import hyperparams

from tf_metaling import checkpoints, configs
from tf_metaling.models import partition_variables
from tf_metaling.training.experiment import run_pretraining
from tf_metaling.training.multilingual_trainer import NonFiniteLossError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny(overrides=None):
    config = configs.get_experiment("tiny")
    if overrides:
        config = hyperparams.override_params_dict(config, overrides, is_strict=True)
    return config


def test_meta_ls_run_writes_a_complete_model_dir(tmp_path):
    config = tiny({"meta": {"enabled": True}, "trainer": {"train_steps": 10, "eval_interval": 10}})
    model_dir = str(tmp_path / "run")
    metrics = run_pretraining(config, model_dir, "train_and_eval")
    for name in ("config.yaml", "model.json", "vocab.txt", "eval_results.json", "checkpoint"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    with open(os.path.join(model_dir, "config.yaml")) as file:
        assert yaml.safe_load(file)["meta"]["enabled"] is True
    for code in config.data.languages:
        assert np.isfinite(metrics[f"loss/{code}"]) and metrics[f"perplexity/{code}"] > 1
    assert metrics["step"] == 10
    restored = checkpoints.restore_model(model_dir)
    assert restored.language_vocabulary.codes == tuple(config.data.languages)
    assert tf.io.gfile.glob(os.path.join(model_dir, "train", "events.*"))


def test_training_reduces_held_out_loss(tmp_path):
    config = tiny({"model": {"language_specific": "adapter"}, "trainer": {"train_steps": 40}})
    before = run_pretraining(config, str(tmp_path / "run"), "eval")
    after = run_pretraining(config, str(tmp_path / "run"), "train_and_eval")
    assert after["loss/mean"] < before["loss/mean"] - 0.3


@pytest.mark.parametrize(
    "variant, language, languages, has_ls, meta",
    [
        ("mono", "xx", ["xx"], False, False),
        ("joint_pair", "xx", ["en", "xx"], False, False),
        ("joint_all", None, ["en", "xx", "yy"], False, False),
        ("joint_all_ls", None, ["en", "xx", "yy"], True, False),
        ("joint_all_meta_ls", None, ["en", "xx", "yy"], True, True),
    ],
)
def test_variants_are_configuration(variant, language, languages, has_ls, meta, tmp_path):
    overrides = configs.variant_overrides(variant, ["en", "xx", "yy"], language)
    overrides["trainer"] = {"train_steps": 2, "eval_interval": 2}
    config = configs.validate(tiny(overrides))
    assert list(config.data.languages) == languages and config.meta.enabled == meta
    model_dir = str(tmp_path / variant)
    run_pretraining(config, model_dir, "train")
    model = checkpoints.restore_model(model_dir)
    assert bool(partition_variables(model).language) == has_ls


def _checkpoint_value(model_dir, name):
    reader = tf.train.load_checkpoint(model_dir)
    keys = [key for key in reader.get_variable_to_shape_map() if name in key and "OPTIMIZER_SLOT" not in key]
    assert len(keys) == 1, keys
    return reader.get_tensor(keys[0])


def _logged_tags(model_dir):
    tags = set()
    for path in tf.io.gfile.glob(os.path.join(model_dir, "train", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


# The surgery treatments (their baseline, joint_all_mixed, is a plain run on mixed batches;
# JointAll+GradVac alone is trained by the resume test below).
@pytest.mark.parametrize("variant", ["joint_all_pcgrad", "joint_all_ls_gradvac"])
def test_surgery_variants_train_and_reduce_held_out_loss(variant, tmp_path):
    overrides = configs.variant_overrides(variant, ["en", "xx", "yy"])
    overrides["trainer"] = {"train_steps": 40, "eval_interval": 40}
    config = configs.validate(tiny(overrides))
    assert config.data.batching == "mixed" and config.surgery.method in ("pcgrad", "gradvac")
    model_dir = str(tmp_path / variant)
    before = run_pretraining(config, model_dir, "eval")
    after = run_pretraining(config, model_dir, "train_and_eval")
    assert after["loss/mean"] < before["loss/mean"] - 0.3
    tags = _logged_tags(model_dir)
    assert {"interference/training_cosine/mean_off_diagonal", "interference/training_cosine/en-xx"} <= tags
    if config.surgery.method == "gradvac":
        assert "interference/gradvac_target/en-xx" in tags
        targets = _checkpoint_value(model_dir, "gradient_surgery/targets")
        assert targets.shape[1:] == (3, 3) and np.any(targets != 0.0)


def test_a_resumed_gradvac_run_restores_its_targets(tmp_path):
    overrides = configs.variant_overrides("joint_all_gradvac", ["en", "xx", "yy"])
    loops = {"checkpoint_interval": 4, "steps_per_loop": 4, "summary_interval": 4}
    overrides["trainer"] = {"train_steps": 8, **loops}
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    run_pretraining(tiny(overrides), straight, "train")
    run_pretraining(tiny({**overrides, "trainer": {"train_steps": 4, **loops}}), resumed, "train")
    halfway = _checkpoint_value(resumed, "gradient_surgery/targets")
    assert np.any(halfway != 0.0)
    run_pretraining(tiny(overrides), resumed, "train")  # restores step 4, trains steps 5-8
    # Had the targets restarted from zero, GradVac would have changed other gradients.
    np.testing.assert_allclose(_checkpoint_value(resumed, "gradient_surgery/targets"),
                               _checkpoint_value(straight, "gradient_surgery/targets"), rtol=1e-5, atol=1e-7)
    expected, actual = _weights(straight), _weights(resumed)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_mixed_bfloat16_meta_run_keeps_float32_weights(tmp_path):
    config = tiny({"meta": {"enabled": True}, "runtime": {"mixed_precision_dtype": "mixed_bfloat16"},
                   "trainer": {"train_steps": 4, "eval_interval": 4}})
    metrics = run_pretraining(config, str(tmp_path / "run"), "train_and_eval")
    for code in config.data.languages:
        assert np.isfinite(metrics[f"loss/{code}"])
    model = checkpoints.restore_model(str(tmp_path / "run"))
    assert {v.dtype for v in model.weights} == {"float32"}
    encoder = model.encoder
    assert encoder.dtype_policy.name == "mixed_bfloat16" and encoder.compute_dtype == "bfloat16"


def test_invalid_configs_name_the_field():
    with pytest.raises(ValueError, match="config field meta.enabled"):
        configs.validate(tiny({"meta": {"enabled": True}, "model": {"language_specific": "none"}}))
    with pytest.raises(ValueError, match="config field data.batching"):
        configs.validate(tiny({"meta": {"enabled": True}, "data": {"batching": "mixed"}}))
    with pytest.raises(ValueError, match="config field model.language_specific"):
        configs.validate(tiny({"model": {"language_specific": "adapters"}}))
    with pytest.raises(ValueError, match="config field data.batching: surgery.method=gradvac needs several"):
        configs.validate(tiny({"surgery": {"method": "gradvac"}}))
    with pytest.raises(ValueError, match="config field surgery.method: surgery.method=pcgrad and meta"):
        configs.validate(tiny({"surgery": {"method": "pcgrad"}, "meta": {"enabled": True}}))
    with pytest.raises(ValueError, match="config field surgery.method: surgery.method=pcgrad combines"):
        configs.validate(tiny({"surgery": {"method": "pcgrad"},
                               "data": {"languages": ["en"], "batching": "mixed"}}))
    with pytest.raises(ValueError, match="config field surgery.method: 'mgda' is not one of"):
        configs.validate(tiny({"surgery": {"method": "mgda"}}))
    with pytest.raises(ValueError, match="config field surgery.granularity"):
        configs.validate(tiny({"surgery": {"granularity": "tensor"}}))
    with pytest.raises(ValueError, match="config field surgery.beta"):
        configs.validate(tiny({"surgery": {"beta": 0.0}}))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    model_dir = str(tmp_path / "run")
    run_pretraining(tiny({"trainer": {"train_steps": 5, "checkpoint_interval": 5}}), model_dir, "train")
    good = tf.train.latest_checkpoint(model_dir)
    exploding = tiny({"trainer": {"train_steps": 15, "learning_rate": 1e30, "checkpoint_interval": 1}})
    with pytest.raises(NonFiniteLossError, match="Non-finite training loss at step"):
        run_pretraining(exploding, model_dir, "train")
    assert tf.train.latest_checkpoint(model_dir) == good
    model = checkpoints.restore_model(model_dir)
    assert all(np.all(np.isfinite(v.numpy())) for v in model.weights)


def _pretrain_override(steps, extra=""):
    return ("meta.enabled=true,model.dropout=0.1,trainer.checkpoint_interval=4,"
            f"trainer.steps_per_loop=2,trainer.summary_interval=2,trainer.train_steps={steps},"
            f"trainer.eval_interval={steps}" + extra)


def _pretrain_command(model_dir, steps, extra=""):
    return [sys.executable, "-m", "trainers.pretrain", "--experiment=tiny", f"--model_dir={model_dir}",
            "--mode=train", f"--params_override={_pretrain_override(steps, extra)}"]


def _pretrain_here(model_dir, steps, extra=""):
    """What `_pretrain_command` runs, in this process (no second TensorFlow start-up)."""
    config = hyperparams.override_params_dict(configs.get_experiment("tiny"), _pretrain_override(steps, extra),
                                              is_strict=True)
    run_pretraining(config, model_dir, "train")


def _logged_losses(model_dir):
    """``{step: training loss}`` from the TensorBoard events; a later file wins for a step."""
    losses = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(model_dir, "train", "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "loss":
                    losses[int(event.step)] = float(tf.make_ndarray(value.tensor))
    return losses


def _weights(model_dir):
    model = checkpoints.restore_model(model_dir)
    return {v.path.split("/", 1)[-1]: v.numpy() for v in model.weights}


@pytest.mark.slow
def test_resume_after_kill_matches_straight_run(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    _pretrain_here(straight, 12)
    # Kill the second run with SIGKILL once it has written a checkpoint mid-way.
    process = subprocess.Popen(_pretrain_command(resumed, 12), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and not tf.train.latest_checkpoint(resumed):
        if process.poll() is not None:
            pytest.fail("the run ended before it could be killed")
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = int(tf.train.latest_checkpoint(resumed).rsplit("-", 1)[-1])
    assert killed_at < 12
    subprocess.run(_pretrain_command(resumed, 12), cwd=ROOT, env=env, check=True, capture_output=True)
    straight_losses, resumed_losses = _logged_losses(straight), _logged_losses(resumed)
    assert sorted(straight_losses) == list(range(2, 13, 2)) and resumed_losses.keys() == straight_losses.keys()
    for step, loss in straight_losses.items():
        assert resumed_losses[step] == pytest.approx(loss, rel=1e-5), step
    expected, actual = _weights(straight), _weights(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert tf.train.latest_checkpoint(resumed).endswith("ckpt-12")


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_two_worker_processes_match_a_single_process(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # No dropout: replicas draw their own masks, so only a deterministic model can
    # match the single process exactly.
    steps, split = 4, ",data.split_global_batch=true,model.dropout=0.0,model.num_layers=1"
    single = str(tmp_path / "single")
    _pretrain_here(single, steps, split)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    multi = str(tmp_path / "multi")
    workers = []
    for index in range(2):
        worker_env = dict(env, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        command = _pretrain_command(multi, steps, split) + ["--strategy=multi_worker_mirrored"]
        workers.append(subprocess.Popen(command, cwd=ROOT, env=worker_env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))
    for worker in workers:
        output, _ = worker.communicate(timeout=900)
        assert worker.returncode == 0, output[-3000:]
    chief, other = _weights(multi), _weights(os.path.join(multi, ".worker-1"))
    expected = _weights(single)
    for name in expected:
        np.testing.assert_array_equal(other[name], chief[name], err_msg=f"workers differ: {name}")
        np.testing.assert_allclose(chief[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_process_that_keeps_iterators_holds_every_runs_training_iterators(tmp_path, monkeypatch):
    from tf_metaling.training import multilingual_trainer

    monkeypatch.setattr(multilingual_trainer, "_KEPT_ITERATORS", None)
    at_exit = []  # not this test process's real atexit: the handler ends the process with status 0
    monkeypatch.setattr(multilingual_trainer.atexit, "register", at_exit.append)
    run_pretraining(tiny({"trainer": {"train_steps": 2}}), str(tmp_path / "before"), "train")
    assert multilingual_trainer._KEPT_ITERATORS is None  # by default a finished run's iterators are freed

    with pytest.raises(RuntimeError, match="worker processes"):  # this is a main process
        multilingual_trainer.keep_iterators_alive()
    assert multilingual_trainer._KEPT_ITERATORS is None
    assert multilingual_trainer._exit_without_deleting_iterators not in at_exit
    monkeypatch.setattr(multilingual_trainer.multiprocessing, "parent_process", lambda: object())  # as in a worker
    multilingual_trainer.keep_iterators_alive()
    multilingual_trainer.keep_iterators_alive()  # idempotent: one list for the process
    run_pretraining(tiny({"trainer": {"train_steps": 2}}), str(tmp_path / "plain"), "train")
    run_pretraining(tiny({"meta": {"enabled": True}, "trainer": {"train_steps": 2}}), str(tmp_path / "meta"), "train")
    kept = multilingual_trainer._KEPT_ITERATORS
    # The plain run's training iterator, then the meta run's training and meta iterators,
    # each still usable (not closed when its trainer went away).
    assert len(kept) == 3
    assert all(next(iterator) is not None for iterator in kept)
    # At exit the process ends without deleting them (once registered, however often asked).
    assert at_exit.count(multilingual_trainer._exit_without_deleting_iterators) == 1
