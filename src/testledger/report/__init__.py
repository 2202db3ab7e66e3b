"""testledger.report"""
