"""The CRMs behind one small protocol (``base``), with one retry policy (``retry``)."""
