"""byoltheory: a literate reproduction of Tian, Chen & Ganguli (ICML 2021), generated from nbs/ by nbdev."""
__version__ = "0.1.0"
