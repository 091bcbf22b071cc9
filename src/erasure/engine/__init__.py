"""How requests move: the rules of each request type, task states, identifier expansion,
the steps a batch of tasks goes through, and the runner that executes them.

Data flows one way: entry points (cli, api) -> runner -> steps -> connectors and ledger.
"""
