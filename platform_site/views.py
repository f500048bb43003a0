from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from tasks.selectors import webhook_endpoints_disabled


@login_required
def dashboard(request):
    return render(request, "dashboard.html", {"disabled_endpoints": webhook_endpoints_disabled(user=request.user)})
