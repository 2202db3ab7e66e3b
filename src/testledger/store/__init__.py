"""testledger.store"""
