"""One place that imports TensorFlow the way the whole project needs it."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

_THREADS = 1


def make_deterministic(seed: int) -> None:
    """Seed every RNG and force deterministic kernels so the same seed gives bit-identical weights."""
    tf_keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(_THREADS)
    except RuntimeError:
        # Thread pools can only be set before TF initialises them; later calls keep the first setting.
        pass


def ref_interpreter(model_path_or_content):
    """tf.lite interpreter with the reference kernels, the only resolver that matches TFLM bit for bit."""
    kwargs = dict(experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    if isinstance(model_path_or_content, (bytes, bytearray)):
        interp = tf.lite.Interpreter(model_content=bytes(model_path_or_content), **kwargs)
    else:
        interp = tf.lite.Interpreter(model_path=str(model_path_or_content), **kwargs)
    interp.allocate_tensors()
    return interp
