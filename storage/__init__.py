"""The ledger's storage layer: LevelDB key-value store, blocks and indices, versioned state, blobs.

* :mod:`storage.model`      -- the ledger data model (blocks, transactions, channel config)
* :mod:`storage.kv`         -- one LevelDB database per node
* :mod:`storage.keys`       -- the byte layout of every key and value (docs/storage.md)
* :mod:`storage.codec`      -- hashing transactions straight from canonical block bytes
* :mod:`storage.ledger`     -- :class:`~storage.ledger.ChannelLedger`: atomic commit and reads
* :mod:`storage.blockstore` -- checked reads of blocks, codes, the tx index and proofs
* :mod:`storage.state`      -- checked reads of world state and history
* :mod:`storage.verify`     -- open-time recovery checks and whole-chain verification
* :mod:`storage.blobstore`  -- the off-chain, content-addressed blob store
* :mod:`storage.errors`     -- typed errors
* :mod:`storage.testing`    -- builders of signed chains for tests and benchmarks

This package imports only :mod:`crypto` from the project, never the node or network layers.
"""
