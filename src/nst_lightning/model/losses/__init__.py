"""Loss terms: content, Gram-matrix style (plain and masked) and total variation, on a common contract."""
