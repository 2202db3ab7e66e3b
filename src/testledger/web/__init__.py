"""testledger.web"""
