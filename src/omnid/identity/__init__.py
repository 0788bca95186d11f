"""Pure identity domain: normalisation, rules, the graph protocol, survivorship. No I/O."""
