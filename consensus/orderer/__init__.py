"""The ordering service: admission, block cutting, block signing and ordered delivery over Raft."""
