"""The options of one backward pass, which the network hands to every layer's ``backward``
(``layers.py``): one frozen record, in plain sight, instead of flags on the layers."""

from dataclasses import dataclass


@dataclass(frozen=True)
class BackwardPass:
    """The options of one backward pass, passed by the network to each layer's ``backward``.

    guided: every ReLU passes only positive gradients (guided backpropagation).
    param_grads: conv and dense layers keep dw, db (fc1's dw alone is 411 MB).
    from_logits: given to the layer the pass starts at: dout is the gradient w.r.t. the
        input of its activation (the logits, for the last layer); the activation is skipped.
    deconvnet: every ReLU passes max(dout, 0), ignoring the forward's mask (Zeiler and
        Fergus' deconvnet).
    relevance: an LRP composite (``vggnp.methods.lrp_plan``): the network calls each layer's
        ``relevance(r, options)`` instead of ``backward``, and a conv or dense layer asks
        ``relevance.rule_for(layer)`` how to pass relevance down (``relevance.py``).
    """
    guided: bool = False
    param_grads: bool = False
    from_logits: bool = False
    deconvnet: bool = False
    relevance: object = None


PLAIN = BackwardPass()  # the ordinary gradient
