"""Networks built from files: VGG16 from its weights file, a user's own Keras convnet from
its model file; both run the fast path."""
