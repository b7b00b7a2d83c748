"""`ecolens adapt`: fit a trained model to one site's camera with a few hundred labelled frames.

A few hundred frames cannot retrain a convolutional trunk, but they can fit what sits on top of
it (tuning the trunk's last blocks on them was measured and lost: docs/field-adaptation.md,
"Tuning the trunk per site"). So the trunk stays frozen and, on its features, adapt fits:

1. the site's own final layer: multinomial logistic regression pulled towards the base
   weights, trained on the frames and their mirrored copies mixed with base training images;
   one such layer per (regularisation, base images' share) setting, averaged: a hundred
   frames cannot reliably choose one setting (see :func:`fit_site_head`);
2. a decision threshold for the positive class and a temperature, chosen on the averaged
   layer's out-of-fold predictions of the frames, to maximise balanced accuracy and then
   minimise log loss;
3. a site gate: a logistic classifier of "this camera" against the base images.

The adapted model computes ``base(x) + gate(x) * (site(x) - base(x))``: on the site's frames
(gate ~1) the site's layer decides; on the base domain (gate ~0) the base model's answer is kept
unchanged, so adapting to a dark chamber does not cost the white board (a global refit cost
TrashNet 2.4 points). It is built from Dense, Add, Multiply and Softmax layers, so
`ecolens convert`, the edge's argmax and `min_confidence` take it like any model.

Part of the field frames (a stable hash of each file's path) is held out and never fitted on;
base and adapted models are compared on it, and the adapted model is written only when it is
better there and not worse on held-out base images. Then, by default, the threshold and
temperature are chosen again out of fold on every labelled frame and the written model is fitted
on all of them.
"""
