"""What muses' tests and benchmarks share, shipped with the package so that neither imports the
other: a throwaway PostgreSQL cluster (:mod:`.postgres`), free ports and a `muses serve` process
(:mod:`.net`), the drawn-shapes dataset (:mod:`.datasets`), Met items in a store and a synthetic
catalog's titles (:mod:`.catalog`). Nothing in muses imports it; it imports only the library.
"""
