"""Model architectures. TinyConv is the seed model; others are registered by name."""

from ..tfutil import tf_keras

LABELS_DEFAULT = ("_silence_", "_unknown_", "yes", "no")


def tiny_conv(input_shape=(49, 40), num_labels=4, dropout=0.5, filters=8, name="tinyconv"):
    """TinyConv as in the seed: Conv2D 8@10x8 stride 2 SAME, ReLU, Dropout, Dense, softmax."""
    L = tf_keras.layers
    inp = L.Input(shape=tuple(input_shape), name="features")
    x = L.Reshape(tuple(input_shape) + (1,), name="reshape")(inp)
    x = L.Conv2D(filters, (10, 8), strides=(2, 2), padding="same", activation="relu", name="conv")(x)
    x = L.Dropout(dropout, name="dropout")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(num_labels, name="dense")(x)
    out = L.Softmax(name="softmax")(x)
    return tf_keras.Model(inp, out, name=name)


def ds_cnn(input_shape=(49, 40), num_labels=4, dropout=0.2, filters=64, blocks=4, name="dscnn"):
    """Small depthwise-separable CNN (Hello Edge style) for comparison with TinyConv."""
    L = tf_keras.layers
    inp = L.Input(shape=tuple(input_shape), name="features")
    x = L.Reshape(tuple(input_shape) + (1,), name="reshape")(inp)
    x = L.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", activation="relu", name="conv0")(x)
    for i in range(blocks):
        x = L.DepthwiseConv2D((3, 3), padding="same", activation="relu", name=f"dw{i}")(x)
        x = L.Conv2D(filters, (1, 1), activation="relu", name=f"pw{i}")(x)
    x = L.AveragePooling2D(pool_size=(int(x.shape[1]), int(x.shape[2])), name="pool")(x)
    x = L.Dropout(dropout, name="dropout")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(num_labels, name="dense")(x)
    out = L.Softmax(name="softmax")(x)
    return tf_keras.Model(inp, out, name=name)


ARCHITECTURES = {"tinyconv": tiny_conv, "dscnn": ds_cnn}


def build(arch: str, input_shape, num_labels: int, **kwargs):
    try:
        fn = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}") from None
    return fn(input_shape=input_shape, num_labels=num_labels, **kwargs)
