"""The partner link: two people agree to carry a few set signals between them.

`partner.py` is the collaborator the engine holds (invitations, consent, unlinking,
signals); `signals.py` says what each signal says and when it may go; `codes.py`
makes and checks invitation codes; `store.py` is what it keeps; `copy.py` its words.
"""
