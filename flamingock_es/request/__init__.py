"""Change requests: the model and its codec, the client that publishes and follows, and the
service (``serve``) that runs them."""
