"""The log-in page, behind the same lock-out as POST /api/auth/token/ (accounts/lockout.py; failed
passwords are counted by accounts/backends.py)."""

from django.contrib.auth import views as auth_views
from django.http import HttpResponse

from accounts import lockout


class LoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs) -> HttpResponse:
        username = request.POST.get("username", "")
        wait = lockout.retry_after(username=username, address=lockout.client_address(request))
        if wait:
            # An unbound form: a bound one would check the password the lock-out is there to protect.
            form = self.form_class(request, initial={"username": username})
            context = self.get_context_data(form=form, lockout=lockout.lockout_message(wait))
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)
