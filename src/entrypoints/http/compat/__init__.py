"""What the APIs of other counter services served here (`/countapi`, `/abacus`) share: their
name rule, JSONP, and answers open to any origin."""
