"""Deterministic training with per-epoch progress, CSV curves and a best-by-validation checkpoint."""

from pathlib import Path

from ..npio import load_split
from ..tfutil import make_deterministic, tf_keras


def compile_model(model, learning_rate):
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model


class _Progress(tf_keras.callbacks.Callback):
    def __init__(self, tag, epochs, log):
        super().__init__()
        self.tag, self.epochs, self.log = tag, epochs, log

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.log(
            f"[{self.tag}] epoch {epoch + 1}/{self.epochs} loss {logs.get('loss', 0):.4f} "
            f"acc {logs.get('accuracy', 0):.4f} val_loss {logs.get('val_loss', 0):.4f} "
            f"val_acc {logs.get('val_accuracy', 0):.4f} lr {float(self.model.optimizer.learning_rate):g}"
        )


class _BestFrom(tf_keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that only considers epochs from `from_epoch` on (e.g. once pruning has finished)."""

    def __init__(self, *args, from_epoch=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.from_epoch = from_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= self.from_epoch:
            super().on_epoch_end(epoch, logs)


def fit(
    model,
    train,
    val,
    epochs,
    batch_size,
    learning_rate,
    checkpoint,
    history_csv,
    seed,
    tag="train",
    callbacks=(),
    log=print,
    compile=True,
    checkpoint_from_epoch=0,
):
    """Fit `model`, keep the best weights by validation accuracy in `checkpoint` and load them back.
    Only epochs from `checkpoint_from_epoch` (0-based) on are candidates."""
    make_deterministic(seed)
    if compile:
        compile_model(model, learning_rate)
    checkpoint = Path(checkpoint)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    best = _BestFrom(
        str(checkpoint),
        monitor="val_accuracy",
        save_best_only=True,
        save_weights_only=True,
        mode="max",
        from_epoch=checkpoint_from_epoch,
    )
    cbs = [best, tf_keras.callbacks.CSVLogger(str(history_csv)), _Progress(tag, epochs, log), *callbacks]
    model.fit(
        train[0],
        train[1],
        validation_data=val,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=cbs,
    )
    model.load_weights(str(checkpoint))
    return model


def _rate_schedule(cfg):
    """The learning rate drops to `final_learning_rate` for the last `final_epochs` epochs, as TF's
    speech_commands recipe ends training: the smaller steps settle the weights a large rate keeps moving."""
    drop_at = cfg["epochs"] - cfg["final_epochs"]
    rates = (cfg["learning_rate"], cfg["final_learning_rate"])
    return tf_keras.callbacks.LearningRateScheduler(lambda epoch, _: rates[epoch >= drop_at])


def train_float(arch, train_npz, val_npz, model_out, history_csv, cfg, seed, log=print):
    from ..variant import parse_model_id
    from .architectures import build

    make_deterministic(seed)
    train, val = load_split(train_npz), load_split(val_npz)
    num_labels = int(max(train[1].max(), val[1].max())) + 1
    # A model id names the architecture and, for extra training seeds, the seed: tinyconv_s7.
    model = build(parse_model_id(arch, seed)[0], train[0].shape[1:], num_labels)
    log(f"[train] {arch}: {model.count_params()} parameters, {len(train[0])} training examples")
    weights = Path(str(model_out) + ".weights.h5")
    fit(
        model,
        train,
        val,
        cfg["epochs"],
        cfg["batch_size"],
        cfg["learning_rate"],
        weights,
        history_csv,
        seed,
        tag=arch,
        callbacks=[_rate_schedule(cfg)],
        log=log,
    )
    model.save(str(model_out))
    weights.unlink(missing_ok=True)
    return model


def load_model(path):
    return tf_keras.models.load_model(str(path))
