-- The rolling deploy's wrapper core.accept_invitation(uuid, text) (20270208040100) served the instances of the release
-- before 20270207300100 while the release that brought it replaced them. That release has shipped everywhere this one
-- ships, and no instance of its predecessor runs: every running API calls core.accept_invitation(uuid, text, text).
-- The wrapper goes, as its TODO said; the three-argument function is unchanged.
DROP FUNCTION core.accept_invitation(uuid, text);
