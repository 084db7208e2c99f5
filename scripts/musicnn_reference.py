"""Run the ORIGINAL musicnn TensorFlow graph on given input patches: the parity reference for training/musicnn.py.

Not part of genrecast and never a dependency: run it with a throwaway interpreter that has TensorFlow, e.g.
``python -m venv /tmp/tfref && /tmp/tfref/bin/pip install tensorflow-cpu==2.15.1 'numpy<2'``, then
``/tmp/tfref/bin/python scripts/musicnn_reference.py WHEEL_DIR MODEL IN.npz OUT.npz`` where ``WHEEL_DIR`` is the
unpacked musicnn 0.1.0 wheel, ``MODEL`` e.g. ``MSD_musicnn`` and ``IN.npz`` holds ``x`` ``[B, 187, 96]``
(musicnn's own input, ``log10(1 + 10000 * mel power)``). ``OUT.npz`` gets every activation musicnn's extractor
exposes, plus the tag logits.
"""

import sys

import numpy as np


def main(wheel_dir: str, model: str, src: str, dst: str) -> None:
    sys.path.insert(0, wheel_dir)
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    from musicnn import models

    x_in = np.load(src)["x"].astype(np.float32)
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, x_in.shape[1], x_in.shape[2]])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outs = models.define_model(x, is_training, model, 50)
    names = ["logits", "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate"]
    sess = tf.compat.v1.Session()
    tf.compat.v1.train.Saver().restore(sess, f"{wheel_dir}/musicnn/{model}/")
    values = sess.run(list(outs), feed_dict={x: x_in, is_training: False})
    np.savez(dst, **{n: np.asarray(v) for n, v in zip(names, values, strict=True)})


if __name__ == "__main__":
    main(*sys.argv[1:])
