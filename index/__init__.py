"""Retrieval: normalisation, encoders, dense and lexical search, fusion, persistence."""
