"""testledger.analyze"""
