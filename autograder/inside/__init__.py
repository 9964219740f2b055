"""Code that runs inside the sandbox: readable by student code, so it holds no secret."""
