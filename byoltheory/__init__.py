"""byoltheory: a literate reproduction of Tian, Chen & Ganguli (ICML 2021).

Generated from nbs/ by nbdev."""
__version__ = "0.1.0"
