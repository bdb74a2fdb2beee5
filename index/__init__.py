"""Retrieval: normalisation, encoders, dense (FAISS) and lexical (BM25) search, fusion, persistence."""
