"""Examples of the user schemas in the OpenAPI document (the story of api.examples)."""

from api.examples import ADA_ID, GRACE_ID

KATHERINE_ID = "1a3c5e7a-9b1d-4f3b-8d5f-7b9d1f3b5d74"
ADA_EMAIL = "ada.lovelace@example.com"

ADA_PUBLIC = {
    "id": ADA_ID,
    "nickname": "ada_l",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "bio": "Backend engineer moving into data platforms; happy to swap interview notes.",
    "profile_picture_url": "https://images.example.com/people/ada_l.jpg",
    "linkedin_profile_url": "https://www.linkedin.com/in/ada-lovelace-example",
    "github_profile_url": "https://github.com/ada-l",
    "is_professional": False,
}
GRACE_PUBLIC = {
    "id": GRACE_ID,
    "nickname": "grace_h",
    "first_name": "Grace",
    "last_name": "Hopper",
    "bio": "Engineering manager. I run the mock-interview evenings.",
    "profile_picture_url": None,
    "linkedin_profile_url": "https://www.linkedin.com/in/grace-hopper-example",
    "github_profile_url": None,
    "is_professional": True,
}
KATHERINE_PUBLIC = {
    "id": KATHERINE_ID,
    "nickname": "kjohnson",
    "first_name": "Katherine",
    "last_name": "Johnson",
    "bio": "Numerical methods, now flight software.",
    "profile_picture_url": "https://images.example.com/people/kjohnson.png",
    "linkedin_profile_url": None,
    "github_profile_url": "https://github.com/kjohnson",
    "is_professional": True,
}
ADA_READ = {
    **ADA_PUBLIC,
    "email": ADA_EMAIL,
    "role": "AUTHENTICATED",
    "is_active": True,
    "is_verified": True,
    "professional_status_updated_at": None,
    "is_locked": False,
    "last_login_at": "2030-03-01T08:41:17Z",
    "created_at": "2030-01-12T19:03:55Z",
    "updated_at": "2030-02-02T10:14:09Z",
}
SIGN_UP = {
    "email": ADA_EMAIL,
    "password": "correct horse battery staple",
    "nickname": "ada_l",
    "first_name": "Ada",
    "last_name": "Lovelace",
}
PROFILE_EDIT = {
    "bio": "Backend engineer moving into data platforms; happy to swap interview notes.",
    "github_profile_url": "https://github.com/ada-l",
}
PASSWORD_CHANGE = {
    "password": "a new passphrase for 2030",
    "current_password": "correct horse battery staple",
}
STAFF_EDIT = {"is_active": False}
ADMIN_CREATE = {
    "email": "grace.hopper@example.com",
    "password": "Analytical Engine 1843!",
    "nickname": "grace_h",
    "first_name": "Grace",
    "last_name": "Hopper",
    "role": "MANAGER",
    "is_professional": True,
}
ROLE_CHANGE = {"role": "MANAGER", "reason": "Runs the spring mock-interview series"}
PROFESSIONAL_CHANGE = {"is_professional": True, "reason": "Employment at a partner company checked"}
