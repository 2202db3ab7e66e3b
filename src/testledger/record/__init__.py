"""testledger.record"""
